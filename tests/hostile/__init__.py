"""Hostile and malformed input: the corpus, the security checks, corruption planted in a root."""
