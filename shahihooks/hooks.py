"""The page's filters and actions as a Python registry.

    @shahihooks.hooks.webhook_urls            # add_filter('shahiassist_webhook_urls')
    def more_urls(urls, event): return [*urls, "https://myapp.com/webhook"]

    @shahihooks.hooks.on_sent                 # add_action('shahiassist_webhook_sent')
    def log_it(attempt): ...

    @shahihooks.hooks.on_failed               # add_action('shahiassist_webhook_failed')
    def alert(attempt): ...                   #   attempt.attempt is the attempt number

    @shahihooks.hooks.on_dead                 # after the last retry, with the dead letter
    def page_someone(attempt): ...

    @shahihooks.hooks.action("ticket.created")  # add_action('..._webhook_ticket_created')
    def send_to_slack(payload): ...             #   runs in the worker, retried like a URL

    @shahihooks.hooks.on_ops_event            # endpoint.failing, endpoint.disabled, ...
    def tell_ops(event, data): ...            #   (ops.py), in the worker

Actions are delivery targets of their own (`action:<name>`): they get a delivery id, retries
on the schedule, the log, stats and dead letters, exactly as a URL does. A hook that raises
is logged and never stops a delivery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("shahihooks.hooks")

ACTION_SCHEME = "action:"


@dataclass(frozen=True)
class Attempt:
    """One attempt, as hooks see it."""

    delivery_id: str
    url: str
    event: str
    attempt: int
    body: bytes
    status: int | None
    error: str | None
    duration_s: float
    outcome: str  # delivered | retry | dead
    response_body: str = ""

    def __repr__(self) -> str:
        """The attempt without its body, with its URL as `redact_url` shows it."""
        from shahihooks.safety import redact_url

        return (
            f"Attempt(delivery_id={self.delivery_id!r}, url={redact_url(self.url)!r}, "
            f"event={self.event!r}, attempt={self.attempt}, status={self.status!r}, "
            f"error={self.error!r}, duration_s={self.duration_s:.3f}, outcome={self.outcome!r})"
        )

    @property
    def payload(self) -> Any:
        import json

        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


AttemptHook = Callable[[Attempt], object]
OpsHook = Callable[[str, dict[str, Any]], object]
UrlFilter = Callable[[list[str], str], Iterable[str]]
Action = Callable[[dict[str, Any]], object]


class Hooks:
    """A registry of filters and actions; `shahihooks.hooks` is the process-wide one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.url_filters: list[UrlFilter] = []
        self.sent: list[AttemptHook] = []
        self.failed: list[AttemptHook] = []
        self.dead: list[AttemptHook] = []
        self.actions: dict[str, dict[str, Action]] = {}
        self.ops: list[OpsHook] = []

    def webhook_urls(self, func: UrlFilter) -> UrlFilter:
        """A filter `(urls, event) -> urls` run at emit: add or remove target URLs."""
        with self._lock:
            self.url_filters.append(func)
        return func

    def on_sent(self, func: AttemptHook) -> AttemptHook:
        """Run after every attempt, successful or not (the page's `webhook_sent`)."""
        with self._lock:
            self.sent.append(func)
        return func

    def on_failed(self, func: AttemptHook) -> AttemptHook:
        """Run after each failed attempt (the page's `webhook_failed`, with the attempt)."""
        with self._lock:
            self.failed.append(func)
        return func

    def on_dead(self, func: AttemptHook) -> AttemptHook:
        """Run when a delivery is dead-lettered after its last retry."""
        with self._lock:
            self.dead.append(func)
        return func

    def on_ops_event(self, func: OpsHook) -> OpsHook:
        """Run `func(event, data)` for each operational event (endpoint.failing, ...: ops.py)
        in the worker that sends it; at least once (twice in a rare race between workers)."""
        with self._lock:
            self.ops.append(func)
        return func

    def run_ops(self, event: str, data: dict[str, Any]) -> None:
        for func in list(self.ops):
            try:
                func(event, dict(data))
            except Exception:
                logger.exception("hook %r raised on %s", func, event)

    def action(self, event: str, name: str | None = None) -> Callable[[Action], Action]:
        """Run `func(payload)` in the worker for every `event`; raising means retry."""
        from shahihooks.events import check_name

        check_name(event)

        def register(func: Action) -> Action:
            label = name or f"{func.__module__}.{func.__qualname__}"
            with self._lock:
                self.actions.setdefault(event, {})[label] = func
            return func

        return register

    def action_targets(self, event: str) -> list[str]:
        return [ACTION_SCHEME + label for label in self.actions.get(event, {})]

    def find_action(self, target: str) -> Action | None:
        label = target[len(ACTION_SCHEME) :]
        for per_event in self.actions.values():
            if label in per_event:
                return per_event[label]
        return None

    def filter_urls(self, urls: list[str], event: str) -> list[str]:
        for func in self.url_filters:
            urls = list(func(list(urls), event))
        return urls

    def any_attempt_hooks(self) -> bool:
        return bool(self.sent or self.failed or self.dead)

    def run(self, attempt: Attempt) -> None:
        """Call the hooks that apply to `attempt`; a hook that raises is only logged."""
        chosen = list(self.sent)
        if attempt.outcome != "delivered":
            chosen += self.failed
        if attempt.outcome == "dead":
            chosen += self.dead
        for func in chosen:
            try:
                func(attempt)
            except Exception:
                logger.exception("hook %r raised on delivery %s", func, attempt.delivery_id)

    def clear(self) -> None:
        with self._lock:
            self.url_filters.clear()
            self.sent.clear()
            self.failed.clear()
            self.dead.clear()
            self.actions.clear()
            self.ops.clear()


hooks = Hooks()
