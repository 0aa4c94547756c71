"""Trace context (shahihooks.tracing), pure: OpenTelemetry's SDK with its in-memory exporter,
and the same calls in a process where OpenTelemetry cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shahihooks import tracing

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_shahihooks_test", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._shahihooks_test = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_no_traceparent_outside_a_span(spans: InMemorySpanExporter) -> None:
    assert tracing.enabled()
    assert tracing.current_traceparent() is None
    assert tracing.inject_headers({"a": "b"}) == {"a": "b"}


def test_traceparent_names_the_current_span(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("emit") as span:
        context = span.get_span_context()
        found = tracing.current_traceparent()
        headers = tracing.inject_headers({})
    assert found == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert headers["traceparent"] == found


def test_an_attempt_is_a_child_span_of_the_emit(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("emit"):
        parent = tracing.current_traceparent()
    assert parent is not None
    with tracing.attempt_span(parent, "webhook attempt", {"shahihooks.attempt": 2}):
        sent = tracing.inject_headers({})
    emit_span, attempt = spans.get_finished_spans()
    assert attempt.name == "webhook attempt"
    assert attempt.context.trace_id == emit_span.context.trace_id
    assert attempt.parent is not None
    assert attempt.parent.span_id == emit_span.context.span_id
    assert attempt.attributes == {"shahihooks.attempt": 2}
    assert attempt.kind is trace.SpanKind.CLIENT
    # the receiver gets the attempt's own span as its parent
    ctx = attempt.context
    assert sent["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_an_attempt_without_a_traceparent_starts_a_trace(spans: InMemorySpanExporter) -> None:
    with tracing.attempt_span(None, "webhook attempt", {}):
        pass
    (attempt,) = spans.get_finished_spans()
    assert attempt.parent is None


def test_without_opentelemetry_everything_is_a_no_op() -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
from shahihooks import tracing
assert not tracing.enabled()
assert tracing.current_traceparent() is None
assert tracing.inject_headers({"a": "b"}) == {"a": "b"}
with tracing.attempt_span("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "x", {}) as span:
    assert span is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.usefixtures("worker")
def test_an_emit_in_a_span_is_traced_to_its_attempt_and_the_receiver(
    spans: InMemorySpanExporter, settings, receiver
) -> None:
    import uuid

    import shahihooks
    from tests.conftest import wait_until

    path = f"/traced-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    with trace.get_tracer("test").start_as_current_span("a web request") as request:
        (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    emitted = request.get_span_context()
    (got,) = receiver.wait_for(path, 1)

    def attempt_spans() -> list[object]:
        """This delivery's (an earlier test's attempts still in flight may end during it)."""
        return [
            s
            for s in spans.get_finished_spans()
            if s.name == "shahihooks.deliver"
            and (s.attributes or {}).get("shahihooks.delivery_id") == delivery.id
        ]

    wait_until(attempt_spans, what="the attempt's span")
    (attempt,) = attempt_spans()
    assert attempt.context.trace_id == emitted.trace_id  # type: ignore[attr-defined]
    assert attempt.parent.span_id == emitted.span_id  # type: ignore[attr-defined]
    assert attempt.attributes["shahihooks.delivery_id"] == delivery.id  # type: ignore[attr-defined]
    _, trace_id, parent_id, _ = got.header("traceparent").split("-")
    assert trace_id == format(emitted.trace_id, "032x")  # the receiver continues the trace
    assert parent_id == format(attempt.context.span_id, "016x")  # type: ignore[attr-defined]
