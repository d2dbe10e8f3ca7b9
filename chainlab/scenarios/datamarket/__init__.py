"""Seed 004, the data marketplace: settings, spec and summary."""
