"""Disposition policy pushed from the gateway API, retained, to the stations of the site."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge.link import StationLink
from edge.sorter.policy import Policy, default_policy, policy_from_mapping, policy_to_mapping
from gateway.main import create_app
from gateway.settings import Settings
from protocol.policy import DispositionPolicy
from simulator.testing import wait_until

pytestmark = pytest.mark.broker
KEY = "policy-test-admin-key-0123456789"


def policy_body(version: str, **changes: Any) -> dict[str, Any]:
    body = policy_to_mapping(default_policy(recalled_skus=("SKU-RECALL",), version=version))
    body.update(changes)
    return DispositionPolicy.model_validate(body).model_dump(mode="json")


def test_pushed_policy_reaches_a_station_that_connects_later_and_bad_ones_are_refused(
    tmp_path: Any, site: str, mqtt_broker: Any, make_link: Callable[..., StationLink]
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        mqtt_port=mqtt_broker.port,
        site=site,
        bootstrap_api_key=KEY,
    )
    applied: list[Policy] = []

    def apply(payload: bytes) -> None:
        applied.append(
            policy_from_mapping(DispositionPolicy.model_validate_json(payload).model_dump())
        )

    with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as client:
        wait_until(lambda: client.get("/healthz").status_code == 200, what="gateway healthy")
        resp = client.put("/api/v1/policy", json=policy_body("site-7"))
        assert resp.status_code == 202 and resp.json()["version"] == "site-7"
        assert client.put("/api/v1/policy", json={"version": "x"}).status_code == 422
        no_key = client.put("/api/v1/policy", json=policy_body("v"), headers={"X-API-Key": ""})
        assert no_key.status_code in (401, 403)

        # The station connects after the push: the retained policy still reaches it.
        link = make_link(on_policy=apply)
        link.start()
        wait_until(lambda: len(applied) == 1, what="policy applied")
        assert applied[0].version == "site-7"
        assert policy_to_mapping(applied[0])["version"] == "site-7"

        # A table sending a failed identity anywhere but quarantine is refused on the
        # station: dead-lettered with the reason, the current policy stays.
        bad = policy_body("site-8")
        bad["rules"] = [
            {**bad["rules"][0], "identity": "unknown_rma", "disposition": "restock", "reason": "x"}
        ]
        assert client.put("/api/v1/policy", json=bad).status_code == 202
        wait_until(
            lambda: any("policy refused" in e for _, _, e in link.store.dead_letters()),
            what="bad policy dead-lettered",
        )
        assert [p.version for p in applied] == ["site-7"]
