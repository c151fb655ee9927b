"""Torture tests: faults, crashes and outages under load (``make torture`` for long sizes)."""
