"""Redis adapter: reads INFO, CONFIG and a sample (or a full scan) of session keys."""
