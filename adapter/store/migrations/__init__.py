"""Alembic migrations of the adapter schema (applied by ``adapter.store.migrate``)."""
