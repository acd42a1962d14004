"""Alembic revisions of the hazmap store (a package so that wheels ship them)."""
