"""Evaluation: how good a world model is, scored against ground truth.

- :mod:`~worldloom.eval.metrics`: per-frame PSNR and SSIM, per-horizon aggregation.
- :mod:`~worldloom.eval.motion`: camera motion from frames by masked block matching, and the
  action-following score (does the view move the way the true actions moved the camera?).
- :mod:`~worldloom.eval.rollout`: held-out rollouts through the Simulator, with baselines
  (copy-last-frame, tokenizer reconstruction) and the action-swap check; a markdown report.

Nothing heavy is imported here; import the submodules.
"""
