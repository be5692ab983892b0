"""joinedup: a linked-data population health pipeline (synthetic data only in demos)."""
