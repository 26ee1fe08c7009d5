"""Alembic migrations of the observability schema (run them with `migrate.upgrade`)."""
