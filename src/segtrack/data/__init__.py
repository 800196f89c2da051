"""Data generation: deterministic synthetic videos with exact masks (``synthetic``)."""
