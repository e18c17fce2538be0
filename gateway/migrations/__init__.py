"""Alembic migrations of the gateway database (run at start by :mod:`gateway.migrate`)."""
