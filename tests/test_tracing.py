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
