"""W3C trace context from emit to attempt, through OpenTelemetry when it is installed.

`emit` inside a span stores `current_traceparent()` with the delivery; each attempt runs in
`attempt_span(traceparent, ...)`, a child span of the emitting one, and `inject_headers`
gives the receiver its `traceparent`. Without `opentelemetry` installed (the extra
`shahihooks[otel]`) each of these does nothing: the import is tried once, here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the extra is not installed: no tracing, at no cost
    trace = None  # type: ignore[assignment]
    TraceContextTextMapPropagator = None  # type: ignore[assignment,misc]

TRACER_NAME = "shahihooks"
HEADER = "traceparent"


def enabled() -> bool:
    """Whether OpenTelemetry's API is importable here."""
    return trace is not None


def current_traceparent() -> str | None:
    """The `traceparent` of the span recording now, or None (no span, or no OpenTelemetry)."""
    if trace is None:
        return None
    span = trace.get_current_span()
    if not span.is_recording() or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(HEADER)


def attempt_span(
    traceparent: str | None, name: str, attributes: Mapping[str, Any]
) -> AbstractContextManager[Any]:
    """A span of the trace `traceparent` names (a new trace if None) while an attempt runs;
    a no-op without OpenTelemetry."""
    if trace is None:
        return contextlib.nullcontext()
    return _span(traceparent, name, dict(attributes))


@contextlib.contextmanager
def _span(traceparent: str | None, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    parent = TraceContextTextMapPropagator().extract({HEADER: traceparent}) if traceparent else None
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CLIENT, attributes=attributes
    ) as span:
        yield span


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """`headers` with the current span's `traceparent` (and `tracestate`) added, if any."""
    if trace is not None and trace.get_current_span().get_span_context().is_valid:
        TraceContextTextMapPropagator().inject(headers)
    return headers
