"""One-command recipes that reproduce the bundled checkpoints."""
