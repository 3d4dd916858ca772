"""Training: one loop (``loop.py``) shared by the tokenizer and the dynamics model."""
