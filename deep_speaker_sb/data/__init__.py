"""Data: the synthetic demo corpus, VIVOS preparation, trials, samplers."""
