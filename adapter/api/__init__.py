"""The HTTP API (FastAPI): ``create_app`` in adapter.api.app."""
