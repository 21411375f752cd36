"""``deploy/``: the Grafana dashboard and the Prometheus rules name only metrics the executor serves, the rules'
thresholds are the configured alert thresholds, and the scrape target is the configured endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_tuner.config.loader import load_config
from tests.executor.monitoring.test_metric_names import exercised_executor, served_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "router-tuner.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"
OURS = re.compile(r"\b((?:router|executor|tuner)_[a-z0-9_]+)")
COMPARISON = re.compile(r"(?:>=|<=|==|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)")


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [var["definition"] for var in dashboard["templating"]["list"] if "definition" in var]
    return exprs


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return served_names(exercised_executor(tmp_path_factory.mktemp("deploy")).telemetry.metrics.registry)


def test_every_metric_the_dashboard_and_the_rules_name_is_served(served: set[str]) -> None:
    exprs = _dashboard_exprs() + [rule["expr"] for rule in _rules()]
    named = {name for expr in exprs for name in OURS.findall(expr)}
    assert len(named) > 20, "the pattern finds the metric names"
    assert named - served == set()


def test_the_dashboard_is_provisioned_from_the_repo() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "router-tuner" and dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "router-tuner.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (datasource,) = source["datasources"]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == datasource["uid"]


def test_alert_rules_mirror_the_configured_thresholds() -> None:
    alerts = load_config().executor.alerts
    mirrored: set[str] = set()
    for rule in _rules():
        keys = [k for k in rule["annotations"]["config_keys"].split(",") if k]
        constants = {float(c) for c in COMPARISON.findall(rule["expr"])}
        for key in keys:
            section, field = key.removeprefix("executor.").split(".")
            assert section == "alerts"
            assert float(getattr(alerts, field)) in constants, f"{rule['alert']}: {key} is not in {rule['expr']}"
            mirrored.add(field)
    # every configured alert threshold has a rule (veto_storm_window_s is the executor's own window)
    assert mirrored == set(alerts.__struct_fields__) - {"veto_storm_window_s"}


def test_scrape_config_targets_the_configured_endpoint_and_loads_the_rules() -> None:
    prometheus = load_config().executor.prometheus
    scrape = yaml.safe_load(SCRAPE.read_text())
    assert scrape["rule_files"] == [RULES.name]
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"{prometheus.host}:{prometheus.port}"]
    jobs = {rule["expr"].split('job="')[1].split('"')[0] for rule in _rules() if "job=" in rule["expr"]}
    assert jobs == {job["job_name"]}
