"""The Toledo continuous output decoder and the weighing detector: pure, exact values.

Frames are built here from the format as the indicator manuals give it (STX, status words
A-C, six weight digits, optional six tare digits, CR, optional checksum = two's complement
of the 7-bit sum), not from the code under test.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.pyserial_scale import BadFrame, ToledoFramer, toledo_checksum
from edge.drivers.scale import Weighing, WeighingDetector, WeightReading

# Status words: bit 5 always set; A: decimal code in bits 0-2, increment x1 = bit 3.
A_KG3 = 0x20 | 0x08 | 5  # XXX.XXX
A_INT = 0x20 | 0x08 | 2  # XXXXXX
KG, MOTION, OUT, NEG, NET, NOT_ZEROED = 0x10, 0x08, 0x04, 0x02, 0x01, 0x40
B = 0x20
C = 0x20  # unit: lb or kg per status word B


def frame(
    swa: int,
    swb: int,
    swc: int,
    weight: str,
    tare: str | None = "000000",
    checksum: bool = True,
) -> bytes:
    body = bytes([0x02, swa, swb, swc]) + weight.encode()
    body += (tare.encode() if tare is not None else b"") + b"\r"
    if checksum:
        body += bytes([(128 - sum(b & 0x7F for b in body) % 128) % 128])
    return body


def decode(data: bytes, checksum: bool = True) -> tuple[list[WeightReading], list[BadFrame]]:
    framer = ToledoFramer(checksum=checksum)
    readings = framer.feed(data, 100.0)
    return readings, framer.take_bad()


def test_a_frame_from_the_spec_by_hand() -> None:
    # STX '-' '0' ' ' "001234" "000000" CR: 1.234 kg gross, stable; the sum is 0x2D6,
    # its seven low bits 0x56, so the checksum is 0x80 - 0x56 = 0x2A ('*').
    raw = bytes.fromhex("022d30203030313233343030303030300d2a")
    assert raw == frame(A_KG3, B | KG, C, "001234")
    assert toledo_checksum(raw[:-1]) == 0x2A
    [reading], bad = decode(raw)
    assert bad == []
    assert reading == WeightReading(
        t_ms=100.0,
        value=Decimal("1.234"),
        unit="kg",
        weight_g=1234.0,
        stable=True,
        net=False,
        load="ok",
        zeroed=True,
        tare_g=0.0,
    )
    assert reading.usable


@pytest.mark.parametrize(
    ("raw", "value", "unit", "grams"),
    [
        (frame(A_INT, B, C | 1, "000850"), "850", "g", 850.0),
        (frame(0x20 | 0x08 | 4, B, C, "000250"), "2.50", "lb", 1133.980925),
        (frame(0x20 | 0x08 | 3, B, C | 3, "000160"), "16.0", "oz", 453.59237),
        (frame(A_KG3, B, C | 2, "001500"), "1.500", "t", 1_500_000.0),
        (frame(0x20 | 0x08 | 0, B, C, "001234"), "1.234E+5", "lb", 55973298.458),
        (frame(0x20 | 0x08 | 1, B | KG, C, "012345"), "1.2345E+5", "kg", 123_450_000.0),
        (frame(A_INT, B | KG, C, "  1234"), "1234", "kg", 1_234_000.0),
        (frame(0x20 | 0x08 | 7, B | KG, C, "012345"), "0.12345", "kg", 123.45),
    ],
)
def test_units_and_decimal_point(raw: bytes, value: str, unit: str, grams: float) -> None:
    [reading], bad = decode(raw)
    assert bad == []
    assert (reading.value, reading.unit) == (Decimal(value), unit)
    assert reading.weight_g == pytest.approx(grams, abs=1e-6)


@pytest.mark.parametrize(
    ("swb", "fields"),
    [
        (B | KG | MOTION, {"stable": False, "load": "ok", "usable": False}),
        (B | KG | NEG, {"value": Decimal("-1.234"), "weight_g": -1234.0, "usable": True}),
        (B | KG | OUT, {"load": "overload", "stable": True, "usable": False}),
        (B | KG | OUT | NEG, {"load": "underload", "usable": False}),
        (B | KG | NOT_ZEROED, {"zeroed": False, "usable": False}),
        (B | KG | NET, {"net": True, "usable": True}),
    ],
)
def test_status_flags(swb: int, fields: dict[str, object]) -> None:
    [reading], _ = decode(frame(A_KG3, swb, C, "001234"))
    for name, expected in fields.items():
        assert getattr(reading, name) == expected, name


def test_net_with_tare_and_the_short_form_without() -> None:
    [net], _ = decode(frame(A_KG3, B | KG | NET, C, "000500", "000120"))
    assert (net.net, net.weight_g, net.tare_g) == (True, 500.0, 120.0)
    [short], bad = decode(frame(A_KG3, B | KG, C, "000500", tare=None))
    assert bad == []
    assert (short.weight_g, short.tare_g) == (500.0, None)
    [plain], _ = decode(frame(A_KG3, B | KG, C, "000500", checksum=False), checksum=False)
    assert plain.weight_g == 500.0


def test_parity_bit_is_ignored() -> None:
    raw = bytes(b | 0x80 for b in frame(A_KG3, B | KG, C, "001234"))
    [reading], bad = decode(raw)
    assert (reading.weight_g, bad) == (1234.0, [])


def test_checksum_characters_equal_to_stx_or_cr_keep_framing() -> None:
    ends_in_stx = frame(A_KG3, B | KG | MOTION, C | 0x10, "000899")  # 0.899 kg, in motion
    ends_in_cr = frame(A_INT, B | KG, C | 0x10, "000899")  # 899 kg (expanded display)
    assert (ends_in_stx[-1], ends_in_cr[-1]) == (0x02, 0x0D)
    readings, bad = decode(ends_in_stx + ends_in_cr + frame(A_INT, B, C | 1, "000007"))
    assert bad == []
    assert [(r.weight_g, r.stable) for r in readings] == [
        (899.0, False),
        (899_000.0, True),
        (7.0, True),
    ]


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (frame(A_KG3, B | KG, C, "001234")[:-1] + b"\x00", "checksum", "got 00h, want 2Ah"),
        (frame(A_KG3, B | KG, C, "00A234"), "malformed", "weight or tare is not digits"),
        (frame(A_KG3, B | KG, C, "12 345"), "malformed", "weight or tare is not digits"),
        (frame(A_KG3, B | KG, C, "001234", "0001x0"), "malformed", "weight or tare is not digits"),
        (frame(0x0D, B | KG, C, "001234"), "malformed", "status byte without bit 5"),
        (frame(A_KG3, B | KG, C | 5, "001234"), "unsupported_unit", "unit code 5"),
    ],
)
def test_bad_frames_are_counted_never_read(raw: bytes, reason: str, detail: str) -> None:
    readings, bad = decode(raw)
    assert readings == []
    assert [(b.reason, b.detail) for b in bad] == [(reason, detail)]


def test_no_cr_where_the_format_puts_it() -> None:
    raw = bytearray(frame(A_KG3, B | KG, C, "001234"))
    raw[16] = ord("7")
    readings, bad = decode(bytes(raw))
    assert readings == []
    assert (bad[0].reason, bad[0].detail) == ("malformed", "no CR")


def test_garbage_before_a_frame_and_a_cut_frame() -> None:
    good = frame(A_KG3, B | KG, C, "001234")
    readings, bad = decode(b"\xffAT\r\nnoise" + good[:9] + good)
    assert [r.weight_g for r in readings] == [1234.0]
    assert [(b.reason, b.detail) for b in bad] == [("garbage", "10 byte(s)"), ("truncated", "")]
    assert bad[1].data == good[:9]


def test_garbage_is_bounded_and_reported_at_the_next_frame() -> None:
    framer = ToledoFramer()
    assert framer.feed(b"\x55" * 10_000, 1.0) == []
    assert framer.pending == 10_000
    [reading] = framer.feed(frame(A_KG3, B | KG, C, "000001"), 2.0)
    [garbage] = framer.take_bad()
    assert (garbage.reason, garbage.detail, len(garbage.data)) == ("garbage", "10000 byte(s)", 64)
    assert (reading.weight_g, framer.pending) == (1.0, 0)


def test_a_stale_fragment_is_dropped_not_completed_later() -> None:
    good = frame(A_KG3, B | KG, C, "001234")
    framer = ToledoFramer(inter_byte_timeout_ms=200)
    assert framer.feed(good[:8], 1000.0) == []
    assert framer.expire(1200.0) == []  # not yet: 200 ms is the limit
    [stale] = framer.expire(1201.0)
    assert (stale.reason, stale.data, stale.t_ms) == ("stale", good[:8], 1000.0)
    assert framer.feed(good[8:], 1300.0) == []  # the tail alone is garbage
    [reading] = framer.feed(good, 1400.0)
    assert reading.t_ms == 1400.0
    assert [b.reason for b in framer.take_bad()] == ["garbage"]


def test_reset_drops_the_partial_frame() -> None:
    framer = ToledoFramer()
    framer.feed(frame(A_KG3, B | KG, C, "001234")[:12], 5.0)
    [dropped] = framer.reset()
    assert (dropped.reason, len(dropped.data), framer.pending) == ("reset", 12, 0)
    assert framer.reset() == []


@given(cuts=st.lists(st.integers(0, 90), max_size=12))
def test_any_split_of_the_stream_gives_the_same_readings(cuts: list[int]) -> None:
    stream = b"".join(frame(A_KG3, B | KG, C, f"{g:06d}") for g in (1, 22, 333, 4444, 55555))
    framer = ToledoFramer()
    readings: list[WeightReading] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        readings += framer.feed(stream[last:cut], 10.0)
        last = cut
    assert [r.weight_g for r in readings] == [1.0, 22.0, 333.0, 4444.0, 55555.0]
    assert framer.take_bad() == []


# -- the weighing detector -----------------------------------------------------------------
def reading(t_ms: float, grams: float, *, stable: bool = True, **kw: object) -> WeightReading:
    return WeightReading(t_ms, Decimal(str(grams)), "g", grams, stable, **kw)  # type: ignore[arg-type]


def run(detector: WeighingDetector, *readings: WeightReading) -> list[Weighing]:
    return [w for r in readings for w in detector.feed(r)]


def test_a_parcel_settles_once_and_is_weighed_by_its_plateau() -> None:
    d = WeighingDetector(empty_g=20, settle_readings=3)
    out = run(
        d,
        reading(0, 0),
        reading(50, 3),  # within the empty band
        reading(100, 310, stable=False),  # riding on
        reading(150, 840, stable=False),
        reading(200, 850),
        reading(250, 855),
        reading(300, 848),  # the plateau: median 850
        reading(350, 851),
        reading(400, 852),  # the same plateau: nothing new
        reading(450, 400, stable=False),  # riding off
        reading(500, 0),
    )
    assert out == [Weighing(200, 300, 100, 850.0, 3)]
    assert not d.loaded


def test_a_load_that_never_settles_is_reported_without_weight() -> None:
    d = WeighingDetector(settle_readings=3)
    out = run(d, reading(0, 500, stable=False), reading(50, 510), reading(100, 0))
    assert out == [Weighing(100, 100, 0, None, 0, "not_settled")]
    assert not out[0].stable


def test_a_second_parcel_on_the_platform_is_a_second_plateau() -> None:
    d = WeighingDetector(empty_g=20, settle_readings=2)
    out = run(
        d,
        reading(0, 850),
        reading(50, 850),
        reading(100, 1700, stable=False),
        reading(150, 1700),
        reading(200, 1702),
        reading(250, 0),
    )
    assert out == [Weighing(0, 50, 0, 850.0, 2), Weighing(150, 200, 0, 1701.0, 2)]


def test_readings_that_wander_start_the_plateau_again() -> None:
    d = WeighingDetector(empty_g=20, settle_readings=3)
    out = run(d, reading(0, 800), reading(50, 850), reading(100, 851), reading(150, 852))
    assert out == [Weighing(50, 150, 0, 851.0, 3)]


@pytest.mark.parametrize(
    ("kw", "problem"),
    [({"load": "overload"}, "overload"), ({"zeroed": False}, "not_zeroed")],
)
def test_problems_are_reported_once_per_load(kw: dict[str, object], problem: str) -> None:
    d = WeighingDetector(settle_readings=1)
    out = run(d, reading(0, 99_000, **kw), reading(50, 99_000, **kw), reading(100, 0))
    assert out == [Weighing(0, 0, 0, None, 0, problem)]


def test_underload_is_not_an_empty_platform() -> None:
    d = WeighingDetector(settle_readings=1)
    out = run(d, reading(0, -5000, load="underload"), reading(50, 0))
    assert out == [Weighing(0, 0, 0, None, 0, "underload")]


def test_detector_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="settle_readings"):
        WeighingDetector(settle_readings=0)
    with pytest.raises(ValueError, match="negative"):
        WeighingDetector(empty_g=-1)
