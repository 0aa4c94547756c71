"""examples/grafana-dashboard.json and examples/keda-scaledobject.yaml: they load, and they
query the series `/metrics` serves (shahihooks.metrics), by their exact names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

import shahihooks.metrics

SERIES = {
    "shahihooks_attempts_total",
    "shahihooks_attempt_duration_seconds_bucket",
    "shahihooks_dead_letters",
    "shahihooks_waiting_deliveries",
    "shahihooks_backlog_deliveries",
    "shahihooks_delivery_lag_seconds",
    "shahihooks_endpoint_up",
    "shahihooks_outbox_events",
}


def test_every_series_is_documented_in_the_metrics_module() -> None:
    doc = shahihooks.metrics.__doc__ or ""
    for name in SERIES:
        assert re.sub(r"_bucket$", "", name) in doc, name


def test_the_grafana_dashboard_loads_and_queries_the_served_series(repo_root: Path) -> None:
    board = json.loads((repo_root / "examples" / "grafana-dashboard.json").read_text())
    assert board["title"] == "shahihooks"
    assert board["uid"]
    assert isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    used = {name for e in exprs for name in re.findall(r"shahihooks_[a-z_]+", e)}
    assert used == SERIES
    assert any("histogram_quantile(0.95" in e for e in exprs)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_the_keda_scaled_object_scales_on_the_delivery_lag(repo_root: Path) -> None:
    scaled = yaml.safe_load((repo_root / "examples" / "keda-scaledobject.yaml").read_text())
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["kind"] == "ScaledObject"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert meta["serverAddress"].startswith("http")
    assert "shahihooks_delivery_lag_seconds" in meta["query"]
    assert float(meta["threshold"]) > 0  # KEDA wants the threshold as a string
    assert isinstance(meta["threshold"], str)
