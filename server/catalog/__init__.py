"""Release catalog: publish verified bundles, serve them to researchers over HTTPS with tokens."""

from server.catalog.catalog import Catalog
from server.catalog.tokens import TokenStore

__all__ = ["Catalog", "TokenStore"]
