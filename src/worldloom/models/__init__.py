"""Neural networks: the VAE tokenizer and the causal diffusion transformer (dynamics)."""
