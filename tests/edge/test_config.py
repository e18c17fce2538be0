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


SCALE = '\n[scale]\nurl = "/dev/returns-scale"\npos_mm = {pos}\nplatform_mm = {platform}\n'


def without_scale(tmp_path: Path, extra: str) -> Path:
    src = (REPO / "hardware" / "station.example.toml").read_text()
    start = src.index("[scale]")
    end = src.index("[vision]")
    p = tmp_path / "s.toml"
    p.write_text(src[:start] + src[end:] + extra)
    return p


def test_scale_section_is_typed_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(without_scale(tmp_path, SCALE.format(pos=900, platform=600)))
    assert cfg.scale is not None
    s = cfg.scale
    assert (s.backend, s.format, s.baudrate, s.bytesize, s.parity, s.stopbits) == (
        "pyserial",
        "toledo",
        9600,
        8,
        "N",
        1,
    )
    assert (s.pos_mm, s.platform_mm, s.tol_mm, s.empty_g, s.settle_readings) == (
        900.0,
        600.0,
        50.0,
        20.0,
        3,
    )
    assert (s.checksum, s.inter_byte_timeout_ms, s.stale_after_ms) == (True, 200.0, 1000.0)
    assert load_config(without_scale(tmp_path, "")).scale is None


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (SCALE.format(pos=900, platform=600) + "baud = 9600\n", r"scale\.baud: Extra inputs"),
        (SCALE.format(pos=900, platform=600) + "parity = 'M'\n", r"scale\.parity"),
        (SCALE.format(pos=900, platform=600) + "bytesize = 6\n", r"scale\.bytesize"),
        (SCALE.format(pos=900, platform=600) + "format = 'sics'\n", r"scale\.format"),
        (SCALE.format(pos=900, platform=0), r"scale\.platform_mm"),
        (SCALE.format(pos=100, platform=600), "starts before the induct photo-eye"),
        (
            SCALE.format(pos=1200, platform=600),
            "the platform \\(to 1550 mm with tol_mm\\) must end before the first diverting "
            "lane at 1500 mm",
        ),
        ('\n[scale]\nurl = "/dev/returns-scale"\n', r"scale\.pos_mm: Field required"),
    ],
)
def test_scale_section_is_bounded(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(without_scale(tmp_path, extra))


def test_a_quarantine_lane_with_a_gate_is_an_inspection_lane(tmp_path: Path) -> None:
    from edge.sorter.model import Disposition
    from simulator.testing import station_config

    lanes = [
        {"name": "restock", "disposition": "restock", "pos_mm": 1500, "gate_pin": 17},
        {"name": "inspect", "disposition": "quarantine", "pos_mm": 2300, "gate_pin": 22},
    ]
    belt = station_config(tmp_path, "/dev/null", lanes=lanes).belt_config()
    assert belt.lane_named("inspect") is not None
    end = belt.lane_for(Disposition.QUARANTINE)
    assert end is not None and (end.name, end.gate) == ("quarantine", None)


@pytest.mark.parametrize(
    ("overflow", "match"),
    [
        ("restock", "overflow 'restock' is no other lane"),
        ("nowhere", "overflow 'nowhere' is no other lane"),
        ("recycle", "overflow lane recycle is for recycle, not restock"),
    ],
)
def test_an_overflow_lane_must_be_another_lane_of_the_same_disposition(
    tmp_path: Path, scanner_pty: str, overflow: str, match: str
) -> None:
    from pydantic import ValidationError

    from edge.config import StationConfig
    from simulator.testing import station_config_data

    data = station_config_data(tmp_path, scanner_pty)
    data["lanes"][0]["overflow"] = overflow
    with pytest.raises(ValidationError, match=match):
        StationConfig.model_validate(data)


def test_the_old_belt_encoder_key_names_its_replacement(tmp_path: Path, scanner_pty: str) -> None:
    from pydantic import ValidationError

    from edge.config import StationConfig
    from simulator.testing import station_config_data

    data = station_config_data(tmp_path, scanner_pty)
    data["belt"]["encoder_mm_per_count"] = 0.5
    with pytest.raises(ValidationError, match=r"one source of truth, \[encoder\]"):
        StationConfig.model_validate(data)
    del data["belt"]["encoder_mm_per_count"]
    data["encoder"] = {"pin_a": 20, "mm_per_pulse": 0.5}
    cfg = StationConfig.model_validate(data)
    assert cfg.belt_config().encoder_mm_per_count == 0.5
    assert cfg.belt_config(encoder=False).encoder_mm_per_count is None  # device failed


def test_a_scanner_bound_below_its_own_latency_and_cadence_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from edge.config import StationConfig
    from simulator.testing import station_config_data

    scanner = {"url": "/dev/x", "device_latency_ms": 30, "read_cadence_ms": 30}
    data = station_config_data(tmp_path, "/dev/x", scanner={**scanner, "max_latency_ms": 50})
    with pytest.raises(ValidationError, match="max_latency_ms must be at least"):
        StationConfig.model_validate(data)
    data = station_config_data(tmp_path, "/dev/x", scanner={**scanner, "max_latency_ms": 60})
    assert StationConfig.model_validate(data).scanner.max_latency_ms == 60.0
