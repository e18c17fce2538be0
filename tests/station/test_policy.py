"""The pushed disposition policy: parsed and checked, cached, a bad cache never used."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.sorter.policy import default_policy, policy_to_mapping
from edge.station.policy import cached_policy, parse_policy
from edge.store import StationStore
from protocol import ProtocolError
from protocol.policy import DispositionPolicy


def wire(version: str = "site1-3") -> str:
    mapping = policy_to_mapping(default_policy(recalled_skus=("SKU-9",), version=version))
    return DispositionPolicy.model_validate(mapping).model_dump_json()


def test_a_valid_push_parses_to_the_policy_and_its_text() -> None:
    text = wire()
    policy, kept = parse_policy(text.encode())
    assert (policy.version, policy.rules[0].skus, kept) == ("site1-3", ("SKU-9",), text)


def test_a_malformed_or_unsafe_push_is_refused() -> None:
    with pytest.raises(ProtocolError):
        parse_policy(b'{"kind": "policy"')
    unsafe = DispositionPolicy.model_validate_json(wire()).model_dump()
    unsafe["rules"] = [{"disposition": "restock", "reason": "matched", "identity": "wrong_item"}]
    with pytest.raises(ValueError, match="may only quarantine"):
        parse_policy(DispositionPolicy.model_validate(unsafe).model_dump_json())


def test_the_cache_gives_the_last_push_and_a_bad_cache_gives_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = StationStore(tmp_path / "st.db")
    try:
        assert cached_policy(store) is None
        store.save_policy("site1-3", wire())
        cached = cached_policy(store)
        assert cached is not None and cached.version == "site1-3"
        store.save_policy("broken", '{"kind": "policy", "version": "broken"}')
        assert cached_policy(store) is None
        assert "cached disposition policy is invalid" in caplog.text
    finally:
        store.close()
