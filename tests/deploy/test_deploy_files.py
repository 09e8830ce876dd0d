"""The files in deploy/ agree with the product: every vendor address the config reads is set
by each production file (and by the demo), the Kubernetes ConfigMap is the shipped config, and
the dashboard and alert rules only use metrics crmsync exports (checked by promtool too).

The tools that need a binary (compose config, kubeconform-style schema validation, hadolint,
systemd-analyze, promtool check rules) run in .ci/deploy-check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sync import metrics
from sync.config import load_config
from sync.config.loopback import loopback_systems

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHIPPED = ROOT / "config.yaml"
BASE_URL_VARS = sorted(set(re.findall(r"\$\{([A-Z0-9_]+_BASE_URL)", SHIPPED.read_text())))


def _env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _compose() -> dict[str, object]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_the_kubernetes_configmap_is_the_shipped_config() -> None:
    """deploy/kubernetes/config.yaml (kustomize may not read outside its directory) is the
    repository's config.yaml, byte for byte."""
    copy = DEPLOY / "kubernetes" / "config.yaml"
    assert copy.read_text() == SHIPPED.read_text(), (
        "config.yaml changed: run `cp config.yaml deploy/kubernetes/config.yaml`"
    )


def test_every_production_file_sets_every_base_url() -> None:
    """compose's env example, the Kubernetes vendor ConfigMap and the demo profile each set
    every *_BASE_URL the config reads, so none falls back to an emulator on 127.0.0.1."""
    assert BASE_URL_VARS, "the shipped config reads no *_BASE_URL"
    example = _env_file(DEPLOY / "crmsync.env.example")
    vendors = _env_file(DEPLOY / "kubernetes" / "vendors.env")
    demo = _compose()["x-demo"]["environment"]  # type: ignore[index]
    for name in BASE_URL_VARS:
        assert example.get(name, "").startswith("https://"), f"crmsync.env.example: {name}"
        assert vendors.get(name, "").startswith("https://"), f"kubernetes/vendors.env: {name}"
        assert str(demo.get(name, "")).startswith("http://emulators:"), f"compose demo: {name}"


def test_the_kubernetes_config_resolves_to_vendors_and_passes_the_production_guard() -> None:
    """The ConfigMap's config with the vendor ConfigMap and the example Secret's keys loads
    under CRMSYNC_REMOTE_ONLY, and no system is on loopback."""
    secret = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    env = {**_env_file(DEPLOY / "kubernetes" / "vendors.env"), **secret["stringData"]}
    env = {key: value for key, value in env.items() if value}
    assert env["CRMSYNC_REMOTE_ONLY"] == "1"
    config = load_config(DEPLOY / "kubernetes" / "config.yaml", env=env)
    assert loopback_systems(config) == {}


def test_the_production_profile_and_systemd_units_set_the_production_guard() -> None:
    """compose's production services and every systemd unit run with CRMSYNC_REMOTE_ONLY=1."""
    production = _compose()["x-production"]["environment"]  # type: ignore[index]
    assert production["CRMSYNC_REMOTE_ONLY"] == "1"
    for unit in (DEPLOY / "systemd").glob("*.service"):
        assert "CRMSYNC_REMOTE_ONLY=1" in unit.read_text(), unit.name


def _exported_families() -> set[str]:
    """Every metric family name crmsync serves (counters without their _total)."""
    text = metrics.render().decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    # families that appear only once observed or read from a store
    names |= {"crmsync_poll_lag_seconds", "crmsync_system_health", "crmsync_outbox_pending"}
    names |= {"crmsync_conflicts_open", "crmsync_dead_letters_open", "crmsync_system_held"}
    names |= {"crmsync_deletes_held"}
    return names


def _used_families(text: str) -> set[str]:
    used = set()
    for name in re.findall(r"\b(crmsync_\w+|process_\w+)", text):
        for suffix in ("_bucket", "_count", "_sum", "_total"):
            if name.endswith(suffix) and not name.endswith("_seconds_total"):
                name = name.removesuffix(suffix)
                break
        used.add(name.removesuffix("_total"))
    return used


@pytest.mark.parametrize(
    "path", ["grafana/crmsync.json", "prometheus/crmsync.rules.yaml"], ids=["dashboard", "rules"]
)
def test_dashboard_and_alerts_use_only_exported_metrics(path: str) -> None:
    """Every crmsync_* / process_* name in the dashboard and the alert rules is a metric family
    crmsync exports (a renamed metric cannot leave a panel blank or an alert silent)."""
    text = (DEPLOY / path).read_text()
    if path.endswith(".json"):
        dashboard = json.loads(text)
        text = "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    exported = {name.removesuffix("_total") for name in _exported_families()}
    used = _used_families(text)
    assert used and used <= exported, sorted(used - exported)


def test_promtool_accepts_the_metrics_crmsync_serves() -> None:
    """`promtool check metrics` finds no problem in what a process serves (histograms, build
    info and process metrics included)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: .ci/deploy-check installs Debian's prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    metrics.observe_propagation("close", 12.0)
    metrics.REQUEST_SECONDS.labels("close", "GET").observe(0.2)
    metrics.BUDGET.labels("close").set(0.5)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=metrics.render(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
