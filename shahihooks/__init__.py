"""shahihooks: signed, retried, rate-limited webhook delivery for Python apps.

import shahihooks
shahihooks.emit("ticket.created", {"ticket_id": 123, "title": "Login issue"})
"""

from shahihooks.emit import Delivery, emit
from shahihooks.endpoints import Endpoint
from shahihooks.errors import (
    ConfigurationError,
    DeliveryError,
    EventError,
    InvalidSignature,
    MissingSignature,
    OutcomeUnknown,
    PayloadError,
    PayloadTooLarge,
    RedisFull,
    ShahihooksError,
    TimestampOutOfRange,
    UnavailableError,
    UnsafeTargetError,
    VerificationError,
)
from shahihooks.events import Event, register_event
from shahihooks.hooks import Attempt, Hooks, hooks
from shahihooks.settings import Settings, configure
from shahihooks.signing import sign_headers, verify
from shahihooks.version import __version__

__all__ = [
    "Attempt",
    "ConfigurationError",
    "Delivery",
    "DeliveryError",
    "Endpoint",
    "Event",
    "EventError",
    "Hooks",
    "InvalidSignature",
    "MissingSignature",
    "OutcomeUnknown",
    "PayloadError",
    "PayloadTooLarge",
    "RedisFull",
    "Settings",
    "ShahihooksError",
    "TimestampOutOfRange",
    "UnavailableError",
    "UnsafeTargetError",
    "VerificationError",
    "__version__",
    "configure",
    "emit",
    "hooks",
    "register_event",
    "sign_headers",
    "verify",
]
