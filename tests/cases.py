"""Access to the field cases (cases.json).

The source of truth is ``../shared/cases/cases.json`` beside the repository; when the
repository is cloned elsewhere, the copy in ``tests/fixtures/cases.json`` is used, so the
field-case tests never skip. ``tests/test_cases.py`` checks that the two are identical
whenever both exist.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SHARED_CASES_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "cases.json"
"""The shared field cases beside the repository (source of truth when present)."""

REPO_CASES_PATH = Path(__file__).resolve().parent / "fixtures" / "cases.json"
"""The repository's copy of the field cases."""


def cases_path() -> Path:
    """The cases file in use: the shared one when present, else the repository copy."""
    return SHARED_CASES_PATH if SHARED_CASES_PATH.exists() else REPO_CASES_PATH


@cache
def all_cases() -> dict[str, Any]:
    """Every field case, by name, from :func:`cases_path`."""
    data: dict[str, Any] = json.loads(cases_path().read_text(encoding="utf-8"))
    return data


def field_case(name: str) -> Any:
    """The named case from the field cases (see :func:`cases_path`)."""
    return all_cases()[name]
