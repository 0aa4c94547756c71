"""Every error shahihooks raises, under one base class.

    ShahihooksError
    ├── ConfigurationError        a setting, endpoint or Celery option is wrong
    │   ├── UnsafeTargetError     a URL is http://, or its host is private/loopback/reserved
    │   └── IncompatibleState     the state in Redis was written by an incompatible version
    ├── EventError                an event name is malformed, unknown or not selected
    ├── PayloadError              data is not JSON, or the body is over the size limit
    │   └── PayloadTooLarge
    ├── UnavailableError          Redis (state or broker) cannot be reached: nothing enqueued
    │   └── RedisFull             Redis is at its maxmemory and refuses writes
    ├── OutcomeUnknown            Redis stopped answering mid-emit: it may have been enqueued
    ├── VerificationError         a received delivery does not verify
    │   ├── MissingSignature
    │   ├── InvalidSignature
    │   └── TimestampOutOfRange
    └── DeliveryError             a delivery attempt failed (carried to hooks and the log)

Messages name the offending value, so a user can fix it without reading the source.
"""

from __future__ import annotations


class ShahihooksError(Exception):
    """Base class of every shahihooks error."""


class ConfigurationError(ShahihooksError):
    """A setting, an endpoint or the Celery configuration is wrong."""


class UnsafeTargetError(ConfigurationError):
    """A target URL is not allowed: plain http, or a private/loopback/reserved address."""


class IncompatibleState(ConfigurationError):
    """The state in Redis was written by a version of shahihooks this one cannot run on (a
    key of another type, a newer or unknown schema): the worker refuses to start."""


class EventError(ShahihooksError):
    """An event name is malformed, unknown, or not selected for delivery."""


class PayloadError(ShahihooksError):
    """The data cannot be serialised to JSON, or the body breaks a limit."""


class PayloadTooLarge(PayloadError):
    """The serialised body is over the size limit (1 MB by default)."""


class UnavailableError(ShahihooksError):
    """Redis (the state or the broker) cannot be reached; nothing was enqueued."""


class RedisFull(UnavailableError):
    """Redis is at its maxmemory (with `noeviction`) and refused the write; nothing was
    enqueued."""


class OutcomeUnknown(ShahihooksError):
    """Redis stopped answering after `emit` sent its step: it may or may not be enqueued.

    Not an UnavailableError: emitting again without a `key` could send the event twice.
    Emit again with the same `key=` and a duplicate is dropped.
    """


class VerificationError(ShahihooksError):
    """A received delivery does not verify."""


class MissingSignature(VerificationError):
    """The delivery carries no signature header this library understands."""


class InvalidSignature(VerificationError):
    """No signature matches the body under any of the given secrets."""


class TimestampOutOfRange(VerificationError):
    """The `webhook-timestamp` header is too old or too far in the future."""


class DeliveryError(ShahihooksError):
    """One delivery attempt failed; the message says why (status, timeout, refusal)."""
