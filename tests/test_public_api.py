"""The public surface is exactly `shahihooks.__all__`, sorted, and all of it importable."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import shahihooks

EXPECTED = {
    "Attempt", "ConfigurationError", "Delivery", "DeliveryError", "Endpoint", "Event",
    "EventError", "Hooks", "InvalidSignature", "MissingSignature", "OutcomeUnknown", "PayloadError",
    "PayloadTooLarge", "RedisFull", "Settings", "ShahihooksError", "TimestampOutOfRange",
    "UnavailableError", "UnsafeTargetError", "VerificationError", "__version__", "configure",
    "emit", "hooks", "register_event", "sign_headers", "verify",
}  # fmt: skip


def test_all_is_sorted_and_is_the_public_surface() -> None:
    assert shahihooks.__all__ == sorted(shahihooks.__all__)
    assert set(shahihooks.__all__) == EXPECTED
    names = {
        n
        for n, v in vars(shahihooks).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert names | {"__version__"} == EXPECTED


def test_every_error_derives_from_the_one_base() -> None:
    errors = [
        v for v in vars(shahihooks).values() if isinstance(v, type) and issubclass(v, Exception)
    ]
    assert len(errors) == 14
    assert all(issubclass(e, shahihooks.ShahihooksError) for e in errors)


# celery.worker and celery.bootsteps themselves are loaded by any Celery app (its Django
# fix-up imports them); what only a running worker needs is not
WORKER_ONLY = (
    "shahihooks.worker",
    "shahihooks.tasks",
    "shahihooks.mover",
    "celery.apps.worker",
    "celery.worker.consumer",
    "celery.worker.request",
)


def test_emit_loads_no_worker_code() -> None:
    code = (
        "import json, sys; import shahihooks; shahihooks.emit; "
        # the kombu transport an app publishes through (a Redis broker) is no worker's either
        "import shahihooks.broker; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(run.stdout))
    assert "shahihooks.emit" in loaded
    assert not loaded & set(WORKER_ONLY)


def test_no_product_module_imports_the_local_cluster() -> None:
    """shahihooks/localcluster.py starts redis-server nodes for tests and benches only."""
    package = Path(shahihooks.__file__).parent
    importers = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.name != "localcluster.py" and "localcluster" in p.read_text()
    ]
    assert importers == []
