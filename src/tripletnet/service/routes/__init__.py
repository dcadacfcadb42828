"""The service's routes, one module a concern: the page, health and metrics (``meta``), embedding
and searching (``search``), and the items (``items``)."""

from . import items, meta, search

ROUTERS = (meta.router, search.router, items.router)

__all__ = ["ROUTERS"]
