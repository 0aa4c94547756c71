"""The page's Zapier integration: a "Webhooks by Zapier" Catch Hook is just an endpoint.

    python -m examples.zapier https://hooks.zapier.com/hooks/catch/123/abc/

adds it to the runtime store for ticket.created (same as
`shahihooks endpoints add URL --event ticket.created`); then build the Zap's actions
(Trello cards, emails...) in Zapier.
"""

from __future__ import annotations

import sys

from shahihooks.connections import redis_client
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.settings import current


def add_zapier_endpoint(url: str, events: tuple[str, ...] = ("ticket.created",)) -> Endpoint:
    settings = current()
    store = EndpointStore(redis_client(settings.redis_url), settings)
    return store.add(Endpoint(url, events=events, description="Webhooks by Zapier"))


if __name__ == "__main__":
    print(add_zapier_endpoint(sys.argv[1]))
