"""``returns-edge``: check-config prints a summary or the errors; the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import check_config, config_summary, main
from edge.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "hardware" / "station.example.toml"


def test_check_config_prints_a_summary_or_the_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config(str(EXAMPLE)) == 0
    out = capsys.readouterr().out
    assert out.startswith("station station1 at site site1")
    assert "lane quarantine: end of belt at 4000.0 mm (no gate)" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE.read_text()
        .replace("[belt]", "[belt]\nspeed = 3")
        .replace("pin = 4\n", "pin = 4\nblocked_levl = 1\n")
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "belt.speed: Extra inputs are not permitted" in err
    assert "photo_eye.blocked_levl: Extra inputs are not permitted" in err


def test_summary_names_every_device_and_lane() -> None:
    config = load_config(EXAMPLE)
    lines = config_summary(config).splitlines()
    assert lines[0] == f"station station1 at site site1 (config {config.config_hash})"
    assert lines[1:4] == [
        "  gpio: pin factory rpigpio",
        "  photo_eye: GPIO4, blocked=high, debounce 5.0 ms",
        "  scanner: pyserial on /dev/returns-scanner, 9600 bit/s, suffix CR",
    ]
    assert [ln.split(":")[0] for ln in lines if ln.startswith("  lane ")] == [
        "  lane restock",
        "  lane refurbish",
        "  lane recycle",
        "  lane quarantine",
    ]


def test_console_script_runs_the_cli(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "returns-edge"
    done = subprocess.run(
        [str(script), "check-config", str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("station station1 at site site1")
