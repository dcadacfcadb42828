"""The HTTP service (FastAPI, the optional ``serve`` extra) and its web page."""

from .app import create_app

__all__ = ["create_app"]
