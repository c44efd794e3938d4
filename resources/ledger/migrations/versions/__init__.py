"""Revision files; each is applied in order by Alembic."""
