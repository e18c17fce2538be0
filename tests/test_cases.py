"""The repository's copy of the field cases matches the shared source of truth."""

from __future__ import annotations

import json

import pytest

from tests.cases import REPO_CASES_PATH, SHARED_CASES_PATH, cases_path, field_case


def test_repo_copy_is_identical_to_shared_cases() -> None:
    if not SHARED_CASES_PATH.exists():
        pytest.skip(f"no shared cases at {SHARED_CASES_PATH}; the repo copy is in use")
    shared = json.loads(SHARED_CASES_PATH.read_text(encoding="utf-8"))
    repo = json.loads(REPO_CASES_PATH.read_text(encoding="utf-8"))
    assert repo == shared


def test_shared_cases_preferred_when_present() -> None:
    expected = SHARED_CASES_PATH if SHARED_CASES_PATH.exists() else REPO_CASES_PATH
    assert cases_path() == expected


def test_repo_copy_holds_the_c4_scan() -> None:
    repo = json.loads(REPO_CASES_PATH.read_text(encoding="utf-8"))
    assert repo["C4_gs1"] == field_case("C4_gs1")
    assert repo["C4_gs1"][0]["expect"]["symbology"] == "]C1"
