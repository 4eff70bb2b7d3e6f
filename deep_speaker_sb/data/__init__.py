"""Data: the corpus-neutral preparation core (:mod:`.prep`), the VIVOS
listing (:mod:`.vivos`), the synthetic demo corpus, trials, samplers."""
