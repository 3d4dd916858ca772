"""worldloom: interactive video world models."""
