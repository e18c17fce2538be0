"""Access to the field cases in ../shared/cases/cases.json (read-only, beside the repo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CASES_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "cases" / "cases.json"


def field_case(name: str) -> Any:
    """The named case from cases.json; skips the test when the file is absent."""
    if not CASES_PATH.exists():
        pytest.skip(f"field cases not found at {CASES_PATH}")
    return json.loads(CASES_PATH.read_text(encoding="utf-8"))[name]
