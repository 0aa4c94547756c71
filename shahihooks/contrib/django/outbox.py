"""The transactional outbox: an event emitted in a transaction is written with its rows.

emit() in a transaction    validates, then INSERTs an OutboxEvent in that transaction
after COMMIT               pushes it to Redis; Redis unreachable: the row stays, the request
                           goes on as if nothing happened
the next emit              DELETEs the rows this process pushed, inside its own transaction
                           (a DELETE of their own would cost a COMMIT each)
rolled back                the row is rolled back with the rest: nothing is sent
emit() outside one         pushes at once; only if Redis is unreachable is a row written
the relay                  in every worker of the project (a Celery bootstep), each second:
                           pushes the rows older than GRACE_S, oldest first, and deletes them
                           (a row already pushed is enqueued again as a duplicate: nothing)

Each row is pushed with one idempotency key (the caller's `key`, else `outbox:<row id>`), so
an event pushed twice — by its request and by a relay, or by two relays on a database that
cannot lock rows — is enqueued once, and its delivery ids are the same both times. Rows are
locked with SELECT ... FOR UPDATE SKIP LOCKED where the database supports it, so several
workers share the work instead of repeating it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from celery import bootsteps
from django.db import DatabaseError, OperationalError, connections, router, transaction
from django.utils import timezone

from shahihooks.emit import Prepared, prepare
from shahihooks.errors import UnavailableError
from shahihooks.settings import current

logger = logging.getLogger("shahihooks.outbox")

GRACE_S = 5.0  # a younger row is being pushed by its own request: the relay leaves it
RELAY_EVERY_S = 1.0
BATCH = 100
PAUSE_AFTER_OUTAGE_S = 5.0  # requests leave their rows to the relay for this long
BACKOFF_MAX_S = 3600.0
OUTAGE = "Redis unreachable: "  # how a row's last_error begins when Redis was away

_redis_away_until: dict[str, float] = {}  # Redis URL -> until when requests leave it be
_pushed: dict[str, deque[uuid.UUID]] = defaultdict(deque)  # database -> rows to delete


def emit(event: str, data: Any, *, key: str | None = None, using: str | None = None) -> None:
    """Validate now; send when the surrounding transaction commits (at once, if none).

    Bad input raises here. Nothing raises after COMMIT: if Redis is unreachable, the event
    waits in the outbox table and the project's worker sends it when Redis answers.
    """
    from shahihooks.contrib.django.models import OutboxEvent

    settings = current()
    prepared = prepare(event, data, key=key, settings=settings)
    if not settings.enabled:
        prepared.send()  # logs that webhooks are disabled
        return
    alias = using or router.db_for_write(OutboxEvent)
    row_id = uuid.uuid4()
    prepared = replace(prepared, key=key or f"outbox:{row_id}", timestamp=int(time.time()))
    if not transaction.get_connection(alias).in_atomic_block:
        error = _push(prepared)
        if error is not None:
            _write(row_id, prepared, alias, error)
        return
    _delete_pushed(alias)
    _write(row_id, prepared, alias, None)
    transaction.on_commit(lambda: _after_commit(row_id, prepared, alias), using=alias)


def _delete_pushed(alias: str) -> None:
    """Delete rows pushed after earlier commits, in the caller's transaction (if it rolls
    back, they stay, and a relay finds them already enqueued)."""
    from shahihooks.contrib.django.models import OutboxEvent

    pushed = _pushed[alias]
    ids: list[uuid.UUID] = []
    while pushed and len(ids) < BATCH:
        try:
            ids.append(pushed.popleft())
        except IndexError:  # another thread's request took the last ones
            break
    if not ids:
        return
    conn = connections[alias]
    pk = OutboxEvent._meta.pk
    table, column = conn.ops.quote_name(OutboxEvent._meta.db_table), conn.ops.quote_name(pk.column)
    marks = ", ".join(["%s"] * len(ids))
    with conn.cursor() as cursor:  # plain SQL: the ORM's delete costs ~8x on the request's path
        cursor.execute(
            f"DELETE FROM {table} WHERE {column} IN ({marks})",  # noqa: S608 - the model's names
            [pk.get_db_prep_value(i, conn) for i in ids],
        )


_COLUMNS = ("id", "created_at", "event", "data", "key", "attempts", "next_try_at", "last_error")


def _write(row_id: uuid.UUID, p: Prepared, alias: str, error: str | None) -> None:
    """One INSERT in plain SQL (the ORM's save costs twice as much on the request's path)."""
    from shahihooks.contrib.django.models import OutboxEvent

    now = timezone.now()
    wait_s = GRACE_S if error is None else _backoff_s(1, error)
    attempts, next_try = (0 if error is None else 1), now + timedelta(seconds=wait_s)
    values = (row_id, now, p.event, p.data_json, p.key, attempts, next_try, error or "")
    conn = connections[alias]
    meta = OutboxEvent._meta
    fields = [meta.get_field(name) for name in _COLUMNS]
    table = conn.ops.quote_name(meta.db_table)
    columns = ", ".join(conn.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - the model's names
            [f.get_db_prep_save(v, conn) for f, v in zip(fields, values, strict=True)],
        )


def _after_commit(row_id: uuid.UUID, p: Prepared, alias: str) -> None:
    from shahihooks.contrib.django.models import OutboxEvent

    error = _push(p)
    if error is None:
        _pushed[alias].append(row_id)
        return
    if error.startswith(OUTAGE):
        return  # the relay sends it when Redis answers
    try:
        OutboxEvent.objects.using(alias).filter(pk=row_id).update(
            attempts=1, last_error=error, next_try_at=_next_try(1, error)
        )
    except DatabaseError as exc:
        logger.warning("outbox row %s: its error not recorded: %s", row_id, exc)


def _push(p: Prepared, *, relaying: bool = False) -> str | None:
    """Enqueue `p`; None if done, else why not (an outage starts with OUTAGE)."""
    url = p.settings.redis_url
    if not relaying and time.monotonic() < _redis_away_until.get(url, 0.0):
        return OUTAGE + "it was a moment ago; the worker's relay sends this event"
    try:
        p.send()
    except UnavailableError as exc:
        _redis_away_until[url] = time.monotonic() + PAUSE_AFTER_OUTAGE_S
        logger.warning("%s kept in the outbox: %s", p.event, exc)
        return OUTAGE + str(exc)
    except Exception as exc:  # never raised into a request after its COMMIT
        logger.exception("%s kept in the outbox: it could not be enqueued", p.event)
        return f"{type(exc).__name__}: {exc}"
    return None


def _backoff_s(attempts: int, error: str) -> float:
    """An outage is tried again each relay pass; any other error less and less often."""
    if error.startswith(OUTAGE):
        return RELAY_EVERY_S
    return float(min(BACKOFF_MAX_S, 30 * 2 ** min(attempts - 1, 12)))


def _next_try(attempts: int, error: str) -> datetime:
    when: datetime = timezone.now() + timedelta(seconds=_backoff_s(attempts, error))
    return when


@dataclass(frozen=True)
class Relayed:
    pushed: int = 0
    failed: int = 0
    outage: bool = False

    def __add__(self, other: Relayed) -> Relayed:
        return Relayed(
            self.pushed + other.pushed, self.failed + other.failed, self.outage or other.outage
        )


_TABLE_RECHECK_S = 60.0
_with_table: set[str] = set()
_seen_without: dict[str, float] = {}  # database -> when it was last seen without the table


def aliases() -> list[str]:
    """The databases that hold the outbox table: those its migration may run on, and has."""
    from shahihooks.contrib.django.models import OutboxEvent

    table = OutboxEvent._meta.db_table
    found = []
    for alias in connections:
        if not router.allow_migrate_model(alias, OutboxEvent):
            continue
        last_missing = _seen_without.get(alias, -_TABLE_RECHECK_S)
        if alias not in _with_table and time.monotonic() - last_missing >= _TABLE_RECHECK_S:
            if table in connections[alias].introspection.table_names():
                _with_table.add(alias)
            else:
                _seen_without[alias] = time.monotonic()
        if alias in _with_table:
            found.append(alias)
    return found


def relay(*, everything: bool = False, batch: int = BATCH) -> Relayed:
    """Push waiting rows, oldest first: those due (or all, with `everything`)."""
    total = Relayed()
    for alias in aliases():
        total += relay_from(alias, everything=everything, batch=batch)
    return total


def relay_from(alias: str, *, everything: bool = False, batch: int = BATCH) -> Relayed:
    from shahihooks.contrib.django.models import OutboxEvent

    features = connections[alias].features
    with transaction.atomic(using=alias):
        rows = OutboxEvent.objects.using(alias).order_by("created_at")
        if not everything:
            rows = rows.filter(next_try_at__lte=timezone.now())
        if features.has_select_for_update:
            rows = rows.select_for_update(skip_locked=features.has_select_for_update_skip_locked)
        pushed: list[uuid.UUID] = []
        failed, outage = 0, False
        for row in rows[:batch]:
            error = _relay_one(row)
            if error is None:
                pushed.append(row.pk)
                continue
            row.attempts += 1
            row.last_error = error[:2000]
            row.next_try_at = _next_try(row.attempts, error)
            row.save(update_fields=["attempts", "last_error", "next_try_at"])
            if error.startswith(OUTAGE):
                outage = True  # the rest would meet it too
                break
            failed += 1
        if pushed:
            OutboxEvent.objects.using(alias).filter(pk__in=pushed).delete()
    return Relayed(len(pushed), failed, outage)


def _relay_one(row: Any) -> str | None:
    try:
        p = prepare(row.event, json.loads(row.data), key=row.key, settings=current())
    except Exception as exc:  # e.g. a custom event this worker has not registered
        return f"{type(exc).__name__}: {exc}"
    return _push(replace(p, timestamp=int(row.created_at.timestamp())), relaying=True)


class Relay:
    """The relay loop, in a daemon thread of a worker."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._complained = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            self.stop.wait(0.0 if self.step() else RELAY_EVERY_S)
        connections.close_all()

    def step(self) -> bool:
        """One pass over every database; True if there may be more to push at once."""
        more = False
        try:
            names = aliases()
        except Exception as exc:
            self._complain("", exc)
            connections.close_all()
            return False
        for alias in names:
            try:
                done = relay_from(alias)
            except Exception as exc:
                if not (isinstance(exc, OperationalError) and "locked" in str(exc)):
                    self._complain(alias, exc)  # (SQLite's one writer: the next pass)
                connections[alias].close()  # a fresh connection on the next pass
                continue
            if done.pushed:
                logger.info("outbox: relayed %d event(s) from %s", done.pushed, alias)
            more = more or (done.pushed >= BATCH and not done.outage)
        return more

    def _complain(self, alias: str, exc: Exception) -> None:
        if time.monotonic() - self._complained > 60:  # once a minute, not once a second
            self._complained = time.monotonic()
            logger.error("outbox relay %s: %s: %s", alias, type(exc).__name__, exc)

    def start(self) -> Relay:
        thread = threading.Thread(target=self.run, name="shahihooks-outbox", daemon=True)
        thread.start()
        return self


class RelayStep(bootsteps.StartStopStep):
    """The relay runs in every worker of the project: started with it, stopped with it.

    Added to `shahihooks.app` by the app's `ready()`, which Celery's Django fix-up runs
    (django.setup()) before the worker builds its blueprint.
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.relay: Relay | None = None

    def start(self, parent: Any) -> None:
        self.relay = Relay().start()

    def stop(self, parent: Any) -> None:
        if self.relay is not None:
            self.relay.stop.set()
