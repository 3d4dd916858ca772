"""Evaluation: how good a world model is, scored against ground truth.

- :mod:`~worldloom.eval.metrics`: per-frame PSNR and SSIM, per-horizon aggregation.
- :mod:`~worldloom.eval.motion`: camera motion from frames by masked block matching, and the
  action-following score (does the view move the way the true actions moved the camera?).
- :mod:`~worldloom.eval.rollout`: held-out rollouts through the Simulator, with baselines
  (copy-last-frame, tokenizer reconstruction) and the action-swap check; a markdown report.
- :mod:`~worldloom.eval.suite`: ``SuiteResult`` (metrics, tables, plots, videos), what every suite returns.
- Suites (``worldloom eval --suite``): :mod:`~worldloom.eval.physics`, :mod:`~worldloom.eval.causality`
  (action following, confusion, no-op stability, counterfactuals on arena),
  :mod:`~worldloom.eval.persistence` (go-and-return probes per k), :mod:`~worldloom.eval.fidelity`,
  :mod:`~worldloom.eval.speed` (the rollout bench); :mod:`~worldloom.eval.suites` is the lazy registry
  and runner, :mod:`~worldloom.eval.report` the HTML page + results.json.

Nothing heavy is imported here; import the submodules.
"""
