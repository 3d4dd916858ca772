"""Flow-matching noise schedules and samplers (``set_timesteps`` / ``step`` interface)."""
from .samplers import EulerSampler
from .schedules import add_noise, sample_train_t, velocity_target

__all__ = ["EulerSampler", "add_noise", "sample_train_t", "velocity_target"]
