from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "hardware").glob("station*.toml")), ids=str)
def test_every_shipped_station_config_loads(path: Path) -> None:
    cfg = load_config(path)
    belt = cfg.belt_config()
    assert belt.end_lane.name == "quarantine"
    assert len(cfg.config_hash) == 12


def write(tmp_path: Path, text: str) -> Path:
    src = (REPO / "hardware" / "station.example.toml").read_text()
    p = tmp_path / "s.toml"
    p.write_text(src + text)
    return p


def test_unknown_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(
        (REPO / "hardware" / "station.example.toml")
        .read_text()
        .replace("debounce_ms = 5", "debounce_ms = 5\ndebounce = 5")
    )
    with pytest.raises(ConfigError, match=r"photo_eye\.debounce"):
        load_config(p)


def test_out_of_range_value_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(
        (REPO / "hardware" / "station.example.toml")
        .read_text()
        .replace("speed_mm_s = 1000", "speed_mm_s = -1")
    )
    with pytest.raises(ConfigError, match=r"belt\.speed_mm_s"):
        load_config(p)


def test_shared_pin_is_rejected(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '\n[[lanes]]\nname = "extra"\ndisposition = "restock"\npos_mm = 3500\ngate_pin = 17\n',
    )
    with pytest.raises(ConfigError, match="own GPIO pin"):
        load_config(p)


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\n")
    with pytest.raises(ConfigError):
        load_config(bad)
