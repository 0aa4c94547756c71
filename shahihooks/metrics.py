"""Prometheus metrics, read from Redis at scrape time (`shahihooks dashboard`'s `/metrics`).

Every series (the `endpoint` label is the URL as shown: credentials masked):

shahihooks_attempts_total{endpoint,event,outcome}    counter   attempts since the start;
                                                     outcome delivered | failed
shahihooks_attempt_duration_seconds{endpoint}        histogram attempt durations (buckets:
                                                     logline.LATENCY_BUCKETS_MS)
shahihooks_dead_letters                              gauge     dead letters kept
shahihooks_waiting_deliveries                        gauge     retries waiting in the schedule
shahihooks_backlog_deliveries{endpoint}              gauge     deliveries in a URL's backlog
shahihooks_delivery_lag_seconds                      gauge     how late the schedule's oldest
                                                     due entry is (0: nothing overdue)
shahihooks_endpoint_up{endpoint}                     gauge     0 while its circuit is open or
                                                     it is disabled, else 1
shahihooks_endpoints{state}                          gauge     endpoints per health state
shahihooks_outbox_events                             gauge     events in Django's outbox table
                                                     (only with the Django app installed)

Cardinality is bounded: at most `MAX_ENDPOINTS` endpoint label values, the URLs with the
most attempts since the start; the rest are summed under endpoint="(other)", so every sum
stays exact (that series may step down when an URL enters the busiest: `rate()` reads it
as a counter reset). Counters read `{p}:totals`, which never expires, so they never go down.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from shahihooks.health import STATES, EndpointHealth, endpoint_health
from shahihooks.overview import (
    OTHER,
    Cell,
    busiest,
    by_url,
    capped,
    endpoint_urls,
    read_queues,
    read_totals,
)
from shahihooks.settings import Settings

MAX_ENDPOINTS = 500

logger = logging.getLogger("shahihooks.metrics")


class RedisCollector(Collector):
    """Every shahihooks series, computed from Redis on each scrape (no state kept here)."""

    def __init__(self, settings: Settings, max_endpoints: int = MAX_ENDPOINTS) -> None:
        self.settings = settings
        self.max_endpoints = max_endpoints

    def collect(self) -> Iterator[Metric]:
        totals = read_totals(self.settings)
        per_url = by_url(totals)
        health = endpoint_health(self.settings, endpoint_urls(self.settings))
        counts = {u: c.n for u, c in per_url.items()}
        for h in health:
            counts.setdefault(h.url, 0)  # an endpoint not yet attempted still gets a label
        keep = busiest(counts, self.max_endpoints)
        yield _attempts(totals, keep)
        yield _durations(capped(per_url, keep))
        yield from _queues(self.settings, keep)
        yield from _health(health, keep)
        outbox = outbox_depth()
        if outbox is not None:
            yield GaugeMetricFamily(
                "shahihooks_outbox_events",
                "Events waiting in the Django outbox table for Redis",
                value=outbox,
            )


def _attempts(totals: dict[tuple[str, str], Cell], keep: set[str]) -> Metric:
    family = CounterMetricFamily(
        "shahihooks_attempts",
        "Delivery attempts since the start, by endpoint, event and outcome",
        labels=["endpoint", "event", "outcome"],
    )
    summed: dict[tuple[str, str], Cell] = {}
    for (url, event), cell in totals.items():
        summed.setdefault((url if url in keep else OTHER, event), Cell()).merge(cell)
    for (url, event), cell in sorted(summed.items()):
        family.add_metric([url, event, "delivered"], cell.ok)
        family.add_metric([url, event, "failed"], cell.failed)
    return family


def _durations(per_url: dict[str, Cell]) -> Metric:
    family = HistogramMetricFamily(
        "shahihooks_attempt_duration_seconds",
        "How long attempts took, by endpoint",
        labels=["endpoint"],
    )
    for url, cell in sorted(per_url.items()):
        buckets = [(_edge(upper), float(count)) for upper, count in cell.cumulative()]
        family.add_metric([url], buckets, sum_value=cell.ms / 1000)
    return family


def _edge(upper_s: float) -> str:
    return "+Inf" if upper_s == float("inf") else f"{upper_s:g}"


def _queues(settings: Settings, keep: set[str]) -> Iterator[Metric]:
    queues = read_queues(settings)
    yield GaugeMetricFamily(
        "shahihooks_dead_letters", "Dead letters kept (replayable)", value=queues.dead_letters
    )
    yield GaugeMetricFamily(
        "shahihooks_waiting_deliveries",
        "Retries waiting in the schedule for their due time",
        value=queues.waiting_retries,
    )
    backlog = GaugeMetricFamily(
        "shahihooks_backlog_deliveries",
        "Deliveries waiting in an endpoint's backlog (its rate limit)",
        labels=["endpoint"],
    )
    summed: dict[str, int] = {}
    for url, size in queues.backlog.items():
        label = url if url in keep else OTHER
        summed[label] = summed.get(label, 0) + size
    for url, size in sorted(summed.items()):
        backlog.add_metric([url], size)
    yield backlog
    yield GaugeMetricFamily(
        "shahihooks_delivery_lag_seconds",
        "How late the oldest due entry of the schedule is (0 when none is due)",
        value=queues.lag_s,
    )


def _health(health: list[EndpointHealth], keep: set[str]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "shahihooks_endpoint_up",
        "1 if the endpoint is sent to, 0 while its circuit is open or it is disabled",
        labels=["endpoint"],
    )
    states = dict.fromkeys(STATES, 0)
    for h in health:
        states[h.state] = states.get(h.state, 0) + 1
        if h.url in keep:
            up.add_metric([h.url], 1 if h.up else 0)
    yield up
    by_state = GaugeMetricFamily(
        "shahihooks_endpoints", "Endpoints per health state", labels=["state"]
    )
    for state, count in states.items():
        by_state.add_metric([state], count)
    yield by_state


def outbox_depth() -> int | None:
    """Rows in the Django outbox table, when the Django app is installed (else None, and
    None with a logged warning when the database cannot be read now)."""
    if "django" not in sys.modules:
        return None
    from django.apps import apps

    if not apps.ready or not apps.is_installed("shahihooks.contrib.django"):
        return None
    from django.db import connections

    from shahihooks.contrib.django import outbox
    from shahihooks.contrib.django.models import OutboxEvent

    try:
        return int(sum(OutboxEvent.objects.using(a).count() for a in outbox.aliases()))
    except Exception as exc:  # the scrape goes on without this one gauge, said in the log
        logger.warning("shahihooks_outbox_events left out: cannot read the outbox (%s)", exc)
        return None
    finally:
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()  # a server's request thread ends: so do its connections


def registry(settings: Settings, max_endpoints: int = MAX_ENDPOINTS) -> CollectorRegistry:
    """A registry holding only shahihooks' collector (no process metrics of this server)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(RedisCollector(settings, max_endpoints))
    return found


def exposition(settings: Settings, max_endpoints: int = MAX_ENDPOINTS) -> bytes:
    """The metrics in Prometheus's text format, read now."""
    from prometheus_client import generate_latest

    return generate_latest(registry(settings, max_endpoints))
