"""The public surface is exactly `shahihooks.__all__`, sorted, and all of it importable."""

from __future__ import annotations

import types

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
