"""The access table is complete and fails closed (in process: walks the app's routes)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.security.access import PUBLIC_MOUNTS, RULES, rule_for_path
from gateway.settings import Settings
from tests.gateway.conftest import PROD_SECRET


def routes() -> set[tuple[str, str]]:
    app = create_app(Settings(env="prod", secret_key=PROD_SECRET))
    found: set[tuple[str, str]] = set()
    mounts = []
    for rc in iter_route_contexts(app.routes):
        methods = rc.methods or set()
        if not methods:
            mounts.append(rc.path)
        for m in methods - {"HEAD"}:
            found.add((m, str(rc.path)))
    assert sorted(mounts) == sorted(PUBLIC_MOUNTS)
    return found


def test_every_route_has_exactly_one_rule_and_every_rule_a_route() -> None:
    assert routes() == set(RULES)


def test_what_each_kind_of_route_needs() -> None:
    public = {k for k, r in RULES.items() if r.public and not r.optional}
    signed = ("/api/v1/tracking/events",)  # carriers: no key, their own HMAC signature
    prefixes = ("/returns", "/login", "/logout", "/livez", *signed)
    assert all(path.startswith(prefixes) for _, path in public)
    writes = {k: r for k, r in RULES.items() if k[0] != "GET"}
    assert {k for k, r in writes.items() if r.form} == {
        ("POST", "/quarantine/{number}"),
        ("POST", "/quarantine/{number}/units/{line_no}/{unit_no}"),
        ("POST", "/rmas/{number}/approval"),
        ("POST", "/alarms/{alarm_id}/ack"),
        ("POST", "/stations/{station}/commands"),
    }
    admin = {path for (_m, path), r in RULES.items() if r.any_of == {"admin"}}
    assert {"/api/v1/api-keys", "/api/v1/users", "/api/v1/audit", "/api/v1/policy"} <= admin
    assert RULES[("POST", "/api/v1/rmas/{number}/transitions")].any_of == {"rmas:write", "lead"}


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/api/v1/rmas/expire-overdue", "/api/v1/rmas/expire-overdue"),
        ("GET", "/api/v1/rmas/R1/label.pdf", "/api/v1/rmas/{number}/label.pdf"),
        ("GET", "/returns/rma/abc/label.pdf", "/returns/rma/{ticket}/label.pdf"),
        ("HEAD", "/livez", "/livez"),
    ],
)
def test_a_path_finds_its_rule(method: str, path: str, template: str) -> None:
    assert rule_for_path(method, path) is RULES[("GET" if method == "HEAD" else method, template)]


def test_a_route_without_a_rule_is_refused(tmp_path: Any) -> None:
    cfg = Settings(env="dev", database_url=f"sqlite:///{tmp_path}/g.db", mqtt_port=1)
    app = create_app(cfg)

    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {"secret": "data"}

    with TestClient(app) as c:
        r = c.get("/forgotten")
    assert (r.status_code, r.json()) == (403, {"detail": "no access rule for this route"})
