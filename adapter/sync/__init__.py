"""Nightly record synchronisation (``adapter sync``): the sources of a night, bookmarks
with checkpoints, three-way reconciliation and the report. docs/sync.md tells how to use it.

Kept import-free: the consortium file imports :mod:`adapter.sync.config`.
"""
