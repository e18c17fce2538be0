"""Simulator: drives the real edge code through its lowest hardware layer."""
