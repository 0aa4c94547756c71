"""Baseline N: the webhook task a user would write by hand, with none of the safety.

Module-level requests.Session, json.dumps, HMAC, POST, self.retry(countdown=...).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

import requests
from celery import Celery

app = Celery("naive", broker=os.environ["BENCH_BROKER"])
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
    task_default_queue="naive",
)
session = requests.Session()
SECRET = b"bench-secret"


@app.task(bind=True, name="naive.send", max_retries=3)
def send(self, url: str, event: str, data: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    body = json.dumps({"event": event, "data": data}).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    try:
        resp = session.post(
            url,
            data=body,
            timeout=15,
            headers={"Content-Type": "application/json", "X-Shahi-Assist-Signature": signature},
        )
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise self.retry(exc=exc, countdown=int(os.environ.get("BENCH_COUNTDOWN", "60"))) from exc


@app.task(name="naive.noop")
def noop() -> None:
    """Baseline C: the cost of one Celery task with nothing in it."""
