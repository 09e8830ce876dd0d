"""Alembic migrations of the store. See README in this folder for how to write a new revision."""
