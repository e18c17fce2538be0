"""Our contracts as their own ecosystems' tools read them (issue 21 item 1).

- AsyncAPI: ``@asyncapi/parser`` 3.x with Node (``tools/asyncapi``, pinned by its lock file,
  installed by ``make tools``, which ``make test`` runs); main's AsyncAPI 2.6 document is kept
  as a fixture to show the check fails on it.
- OpenAPI: ``openapi-spec-validator``.
- Prometheus exposition (gateway ``/metrics`` and the station's): ``promtool check metrics``
  (Debian package ``prometheus``), or, where promtool is absent, ``prometheus_client``'s
  text-format parser.
- The shipped systemd unit: ``systemd-analyze verify``.
- The Grafana dashboard (``hardware/grafana/returns-sorter.json``): every metric and label its
  expressions name is in the exposition of the job it selects.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import StationMetrics
from gateway.services.events import ingest_event
from gateway.services.stations import upsert_station
from protocol import (
    DeviceHealth,
    LinkStatus,
    ParcelEvent,
    StationHealth,
    StationStatus,
    asyncapi,
    decode,
)
from protocol.examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "asyncapi"
MAIN_DOC = ROOT / "tests" / "fixtures" / "contracts" / "asyncapi-2.6-main.yaml"
UNIT = ROOT / "hardware" / "returns-edge.service"
DASHBOARD = ROOT / "hardware" / "grafana" / "returns-sorter.json"


def asyncapi_parse(*files: Path) -> list[dict[str, Any]]:
    """Run @asyncapi/parser on ``files``: one {version, errors, warnings} per file."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the AsyncAPI parser check needs it")
    assert (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run `make tools`"
    )
    proc = subprocess.run(
        ["node", str(TOOL / "validate.mjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_asyncapi_parser_accepts_the_generated_document_without_a_warning() -> None:
    (result,) = asyncapi_parse(asyncapi.ASYNCAPI_PATH)
    assert result["version"] == "3.0.0"
    assert result["errors"] == []
    assert result["warnings"] == []


def test_asyncapi_parser_refuses_mains_2_6_document() -> None:
    """The check is real: the document main shipped has 13 errors and 15 warnings."""
    (result,) = asyncapi_parse(MAIN_DOC)
    assert len(result["errors"]) == 13
    assert len(result["warnings"]) == 15
    messages = {e["message"] for e in result["errors"]}
    assert '"items" property type must be array' in messages
    assert '"discriminator" property type must be string' in messages
    assert {w["code"] for w in result["warnings"]} >= {
        "asyncapi-info-contact",
        "asyncapi-info-license",
        "asyncapi2-message-messageId",
    }


def test_every_message_has_examples_that_are_real_encoded_messages() -> None:
    doc = asyncapi.build()
    models = asyncapi.contract_models()
    assert sorted(doc["components"]["messages"]) == sorted(m.__name__ for m in models)
    for model in models:
        examples = doc["components"]["messages"][model.__name__]["examples"]
        assert examples, f"{model.__name__} has no example in protocol/examples.py"
        for example, (_, _, instance) in zip(examples, EXAMPLES[model], strict=True):
            assert decode(json.dumps(example["payload"]), model) == instance


def test_asyncapi_schema_writes_draft_07_forms() -> None:
    converted = asyncapi.asyncapi_schema(
        {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "integer"}],
            "items": False,
            "properties": {"x": {"discriminator": {"propertyName": "kind", "mapping": {}}}},
        }
    )
    assert converted == {
        "type": "array",
        "items": [{"type": "string"}, {"type": "integer"}],
        "additionalItems": False,
        "properties": {"x": {"discriminator": "kind"}},
    }


def test_openapi_document_passes_openapi_spec_validator(tmp_path: Path) -> None:
    from gateway.main import create_app
    from gateway.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/g.db", env="dev", mqtt_port=1)
    spec = create_app(settings).openapi()
    assert spec["openapi"].startswith("3.")
    validate(spec)  # raises OpenAPIValidationError with the path on an invalid document
    assert len(spec["paths"]) > 10


def promtool_problems(exposition: str) -> str:
    """What ``promtool check metrics`` says about ``exposition`` ("" = clean).

    Without promtool: ``prometheus_client``'s parser of the text format (syntax only, not
    promtool's naming lint).
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        list(text_string_to_metric_families(exposition))  # raises ValueError on bad syntax
        return ""
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (proc.stdout + proc.stderr).strip() or ("" if proc.returncode == 0 else "failed")


def test_promtool_finds_problems_in_a_bad_exposition() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is absent (Debian package prometheus): parser fallback only")
    assert "_total" in promtool_problems("# HELP foo a\n# TYPE foo counter\nfoo 1\n")


def gateway_exposition(tmp_path: Path) -> str:
    """The gateway's /metrics (dev settings, SQLite): one parcel event, one degraded station."""
    from gateway.main import create_app
    from gateway.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/g.db", env="dev", mqtt_port=1)
    with TestClient(create_app(settings)) as client:
        db = client.app.state.db  # type: ignore[attr-defined]
        with db.session() as s:
            ((_, _, event),) = EXAMPLES[ParcelEvent]
            assert isinstance(event, ParcelEvent)
            ingest_event(s, event, received_at=event.inducted_at)
            health = StationHealth(
                link=LinkStatus(sync_lag=2, outbox_depth=5),
                devices={"rfid": DeviceHealth(state="failed")},  # opens a device_down alarm
            )
            upsert_station(
                s, "site", StationStatus(station="st-1", state="degraded", health=health)
            )
        r = client.get("/metrics")
    assert r.status_code == 200
    return r.text


def station_exposition() -> str:
    """A station's /metrics with one parcel out, one device failed and one alarm."""
    status = {
        "link": {"sync_lag": 1, "outbox_depth": 3},
        "devices": {"rfid": {"state": "ok"}, "scanner": {"state": "failed"}},
        "belt_running": True,
        "alarms": {"device_down": {}},
        "core": {"counters": {"ambiguous_reads": 2, "late_reads": 1, "orphan_reads": 4}},
    }
    metrics = StationMetrics("st-1", lambda: status)
    metrics.parcel_exited("restock", "matched", 20.0)
    return generate_latest(metrics.registry).decode()


def test_gateway_exposition_passes_promtool(tmp_path: Path) -> None:
    text = gateway_exposition(tmp_path)
    assert 'rs_parcels_total{lane="restock",reason="restock_grade_a",station="st-1"} 1.0' in text
    assert promtool_problems(text) == ""


def test_station_exposition_passes_promtool() -> None:
    text = station_exposition()
    assert 'rs_station_device_up{device="scanner"} 0.0' in text
    assert 'rs_station_read_problems_total{kind="late"} 1.0' in text
    assert 'rs_station_read_problems_total{kind="bad"} 0.0' in text
    assert promtool_problems(text) == ""


def exposed(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from an exposition."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


METRIC = re.compile(r"\b(rs_[a-z0-9_]+)\b")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
ADDED_BY_PROMETHEUS = {"job", "instance"}


def test_every_dashboard_expression_names_exposed_metrics_and_labels(tmp_path: Path) -> None:
    """hardware/grafana/returns-sorter.json against the real expositions, job by job."""
    by_job = {
        "$gateway_job": exposed(gateway_exposition(tmp_path)),
        "$station_job": exposed(station_exposition()),
    }
    assert "rs_parcels" not in by_job["$gateway_job"]  # a counter is queried as rs_parcels_total
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "returns-sorter"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) == 23  # 18 panels
    seen: set[str] = set()
    for expr in exprs:
        job = re.search(r'job="(\$[a-z_]+)"', expr)
        assert job is not None, f"no job selector: {expr}"
        exposition = by_job[job.group(1)]
        names = METRIC.findall(expr)
        assert names, expr
        for name in names:
            assert name in exposition, f"{name} is not exposed by {job.group(1)}: {expr}"
        labels = set(MATCHER.findall(expr)) | {
            label.strip() for group in GROUPING.findall(expr) for label in group.split(",")
        }
        known = set().union(*(exposition[n] for n in names)) | ADDED_BY_PROMETHEUS
        assert labels <= known, f"{sorted(labels - known)} not labels of {names}: {expr}"
        seen.update(names)
    # every family of either exposition is on the dashboard (its _created gauges aside)
    families = {
        n.removesuffix("_bucket").removesuffix("_total")
        for e in by_job.values()
        for n in e
        if not n.endswith(("_created", "_count", "_sum"))
    }
    on_dashboard = {n.removesuffix("_bucket").removesuffix("_total") for n in seen}
    assert families == on_dashboard


def systemd_verify(unit_text: str, tmp_path: Path) -> str:
    """``systemd-analyze verify`` on ``unit_text``: its output ("" = clean).

    The unit's executables live under /opt/returns-sorter on a station; here they point at
    a stub, so verify checks everything else (sections, keys, values, dependencies).
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    stub = tmp_path / "returns-edge"
    stub.write_text("#!/bin/sh\n", encoding="utf-8")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(
        unit_text.replace("/opt/returns-sorter/.venv/bin/returns-edge", str(stub)),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (proc.stdout + proc.stderr).strip() or ("" if proc.returncode == 0 else "failed")


def test_shipped_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert "ExecStart=/opt/returns-sorter/.venv/bin/returns-edge --config" in text
    assert systemd_verify(text, tmp_path) == ""


def test_systemd_analyze_verify_reports_a_bad_unit(tmp_path: Path) -> None:
    bad = UNIT.read_text(encoding="utf-8").replace("Type=notify", "Type=notfy")
    assert "Failed to parse service type, ignoring: notfy" in systemd_verify(bad, tmp_path)
