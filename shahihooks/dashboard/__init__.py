"""`shahihooks dashboard`: a web dashboard and Prometheus metrics for the whole deployment.

One process, reading Redis (any number of workers write it): `server` serves the pages
(`pages`, with SVG `charts` drawn here) and `/metrics` (shahihooks.metrics); `data` reads
what the pages show.
"""

from __future__ import annotations

from shahihooks.dashboard.server import DashboardServer, check_bind, serve

__all__ = ["DashboardServer", "check_bind", "serve"]
