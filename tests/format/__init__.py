"""The storage format: format versions and migrations."""
