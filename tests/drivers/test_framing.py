"""Scanner line framing: field cases C3, C4, C5 and their neighbours."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.framing import Dropped, ScanFrame, ScanFramer, split_aim_prefix
from tests.cases import field_case


def _case_ids(key: str) -> list[int]:
    return list(range(len(field_case(key))))


def run_chunks(
    framer: ScanFramer, chunks: list[Any], step_ms: float = 10.0
) -> tuple[list[ScanFrame], list[Dropped]]:
    """Feed cases.json-style chunks (hex strings or {"silence_ms": n}) at advancing times."""
    t_ms = 0.0
    frames: list[ScanFrame] = []
    dropped: list[Dropped] = []
    for chunk in chunks:
        if isinstance(chunk, dict):
            t_ms += float(chunk["silence_ms"])
            continue
        frames += framer.feed(bytes.fromhex(chunk), t_ms)
        dropped += framer.take_dropped()
        t_ms += step_ms
    return frames, dropped


# -- C3 / C5 exactly as in cases.json -----------------------------------------------


@pytest.mark.parametrize("index", _case_ids("C3_framing"))
def test_c3_framing_cases(index: int) -> None:
    case = field_case("C3_framing")[index]
    frames, _ = run_chunks(ScanFramer(suffix=b"\r"), case["chunks_hex"])
    codes = [f.code for f in frames]
    assert codes == case["expect_codes"]
    for never in case.get("never_emit", []):
        assert never not in codes


@pytest.mark.parametrize("index", _case_ids("C3_framing"))
@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\r\n"])
def test_c3_framing_cases_any_configured_suffix(index: int, suffix: bytes) -> None:
    case = field_case("C3_framing")[index]
    frames, _ = run_chunks(ScanFramer(suffix=suffix), case["chunks_hex"])
    assert [f.code for f in frames] == case["expect_codes"]


@pytest.mark.parametrize("index", _case_ids("C5_noise"))
def test_c5_noise_cases(index: int) -> None:
    case = field_case("C5_noise")[index]
    frames, dropped = run_chunks(ScanFramer(), case["chunks_hex"])
    assert [f.code for f in frames] == case["expect_codes"]
    assert all(f.symbology is None and not f.had_noise for f in frames)
    # The "AT" probe (with its FF 00 noise) is reported, not silently lost.
    assert [(d.reason, d.data, d.had_noise) for d in dropped] == [("ignored", b"\xff\x00AT", True)]


def test_c3_case1_frames_and_first_byte_times() -> None:
    framer = ScanFramer()
    out = framer.feed(bytes.fromhex("30313233"), 100.0)
    out += framer.feed(bytes.fromhex("343536370D"), 110.0)
    out += framer.feed(bytes.fromhex("0A3839"), 120.0)
    out += framer.feed(bytes.fromhex("30310D0A"), 130.0)
    assert out == [
        ScanFrame(code="01234567", symbology=None, t_ms=100.0, had_noise=False),
        ScanFrame(code="8901", symbology=None, t_ms=120.0, had_noise=False),
    ]
    assert framer.take_dropped() == []
    assert framer.pending == 0


def test_blank_lines_yield_nothing_and_drop_nothing() -> None:
    framer = ScanFramer(suffix=b"\r\n")
    assert framer.feed(b"\r\n\r\n\n\n\r\r", 0.0) == []
    assert framer.take_dropped() == []


# -- stale fragments (C3 case 3) ------------------------------------------------------


def test_stale_fragment_dropped_by_feed_implicit_expiry() -> None:
    framer = ScanFramer(inter_byte_timeout_ms=500.0)
    assert framer.feed(b"ABC", 1000.0) == []
    frames = framer.feed(b"DEF\r", 3000.0)
    assert frames == [ScanFrame("DEF", None, 3000.0, False)]
    assert framer.take_dropped() == [Dropped("stale", b"ABC", 1000.0, False)]


def test_stale_fragment_dropped_by_explicit_expire() -> None:
    framer = ScanFramer(inter_byte_timeout_ms=500.0)
    assert framer.feed(b"ABC", 1000.0) == []
    assert framer.expire(1400.0) == []
    assert framer.expire(1500.0) == []  # exactly the timeout: not yet stale
    assert framer.expire(1500.5) == [Dropped("stale", b"ABC", 1000.0, False)]
    assert framer.expire(9000.0) == []  # reported once
    assert framer.feed(b"DEF\r", 3000.0) == [ScanFrame("DEF", None, 3000.0, False)]
    assert framer.take_dropped() == []


def test_timeout_is_measured_from_the_last_byte_not_the_first() -> None:
    framer = ScanFramer(inter_byte_timeout_ms=500.0)
    t = 0.0
    for ch in b"SLOWCODE":
        assert framer.feed(bytes([ch]), t) == []
        t += 400.0  # each gap below the timeout, total well above it
    assert framer.feed(b"\r", t) == [ScanFrame("SLOWCODE", None, 0.0, False)]
    assert framer.take_dropped() == []


def test_terminator_after_silence_does_not_complete_stale_fragment() -> None:
    framer = ScanFramer(inter_byte_timeout_ms=500.0)
    framer.feed(b"ABC", 0.0)
    assert framer.feed(b"\r", 2000.0) == []
    assert [d.reason for d in framer.take_dropped()] == ["stale"]


# -- terminators ------------------------------------------------------------------


def test_crlf_split_across_chunks() -> None:
    framer = ScanFramer(suffix=b"\r\n")
    out = framer.feed(b"RMA-1\r", 0.0)
    out += framer.feed(b"\nRMA-2\r", 5.0)
    out += framer.feed(b"\n", 10.0)
    assert [f.code for f in out] == ["RMA-1", "RMA-2"]
    assert framer.take_dropped() == []


def test_lf_only_suffix() -> None:
    framer = ScanFramer(suffix=b"\n")
    out = framer.feed(b"RMA-000123\nRMA-0", 0.0) + framer.feed(b"00124\n", 1.0)
    assert [f.code for f in out] == ["RMA-000123", "RMA-000124"]


def test_invalid_suffix_rejected() -> None:
    with pytest.raises(ValueError):
        ScanFramer(suffix=b"\t")


# -- GS1 and AIM (C4) ---------------------------------------------------------------


def test_c4_gs1_aim_split_and_gs_kept() -> None:
    scan_hex = field_case("C4_gs1")[0]["scan_hex"]
    raw = bytes.fromhex(scan_hex)
    framer = ScanFramer()
    frames = framer.feed(raw[:7], 0.0) + framer.feed(raw[7:], 20.0)
    assert len(frames) == 1
    frame = frames[0]
    assert frame.symbology == field_case("C4_gs1")[0]["expect"]["symbology"] == "]C1"
    assert frame.code == "0109501101020917" + "17251231" + "10ABC123" + "\x1d" + "21SN0001"
    assert "]" not in frame.code
    assert not frame.had_noise
    assert frame.t_ms == 0.0


@pytest.mark.parametrize(
    ("raw", "symbology", "code"),
    [
        (b"]E05901234123457\r", "]E0", "5901234123457"),
        (b"]d2010950110153000\r", "]d2", "010950110153000"),
        (b"]Q3https://x.example/r/1\r", "]Q3", "https://x.example/r/1"),
        (b"]A0X\r", "]A0", "X"),  # AIM prefix on a short code
        (b"]A0XY\r", "]A0", "XY"),
        (b"]1ABC\r", None, "]1ABC"),  # not AIM: flag must be a letter
        (b"]C\r", None, "]C"),  # too short to carry an identifier
        (b"]C-1\r", None, "]C-1"),  # modifier must be a letter or digit
        (b"X]C1\r", None, "X]C1"),  # only at the start
    ],
)
def test_aim_prefix(raw: bytes, symbology: str | None, code: str) -> None:
    framer = ScanFramer()
    assert framer.feed(raw, 0.0) == [ScanFrame(code, symbology, 0.0, False)]


def test_aim_identifier_alone_is_not_a_code() -> None:
    framer = ScanFramer()
    assert framer.feed(b"]C1\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("empty", b"]C1", 0.0, False)]


def test_split_aim_prefix_helper() -> None:
    assert split_aim_prefix("]C1ABC") == ("]C1", "ABC")
    assert split_aim_prefix("ABC") == (None, "ABC")


# -- noise (C5 neighbours) ----------------------------------------------------------


def test_noise_inside_code_is_garbled_not_stripped() -> None:
    # Stripping \xb1 would turn the read into another valid code, RMA-00023.
    framer = ScanFramer()
    assert framer.feed(b"RMA-000\xb123\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("garbled", b"RMA-000\xb123", 0.0, True)]


def test_noise_after_first_printable_byte_is_garbled() -> None:
    framer = ScanFramer()
    assert framer.feed(b"RMA\xff-000123\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("garbled", b"RMA\xff-000123", 0.0, True)]


@pytest.mark.parametrize(
    "raw",
    [
        b"RMA-\xc3\x28\xff000123",  # invalid UTF-8 in the middle
        b"RMA-000123\x00",  # trailing NUL before the terminator
        b"\x00RMA-000\x02123",  # leading noise stripped, inner STX still garbles
        b"01\x1d21\x03X",  # control byte among GS1 data
    ],
)
def test_any_inner_noise_byte_garbles_the_frame(raw: bytes) -> None:
    framer = ScanFramer()
    assert framer.feed(raw + b"\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("garbled", raw, 0.0, True)]


def test_garbled_read_does_not_affect_the_next_code() -> None:
    framer = ScanFramer()
    frames = framer.feed(b"RMA-000\xb123\rRMA-000123\r", 0.0)
    assert frames == [ScanFrame("RMA-000123", None, 0.0, False)]
    assert [d.reason for d in framer.take_dropped()] == ["garbled"]


def test_leading_port_open_garbage_is_stripped() -> None:
    framer = ScanFramer()
    frames = framer.feed(b"\xff\x00AT\rRMA-000123\r", 0.0)
    assert frames == [ScanFrame("RMA-000123", None, 0.0, False)]
    assert framer.take_dropped() == [Dropped("ignored", b"\xff\x00AT", 0.0, True)]


def test_leading_control_bytes_stripped_and_gs_kept() -> None:
    framer = ScanFramer()
    frames = framer.feed(b"\x02\x1d01\x1d21X\r", 0.0)
    assert frames == [ScanFrame("\x1d01\x1d21X", None, 0.0, True)]


def test_short_frame_with_noise_dropped_as_noise() -> None:
    framer = ScanFramer()
    assert framer.feed(b"\xffOK\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("noise", b"\xffOK", 0.0, True)]


def test_short_frame_without_noise_is_a_code() -> None:
    framer = ScanFramer()
    assert [f.code for f in framer.feed(b"OK\r7\r", 0.0)] == ["OK", "7"]


def test_noise_only_frame_dropped() -> None:
    framer = ScanFramer()
    assert framer.feed(b"\xff\x00\xfe\r", 0.0) == []
    assert framer.take_dropped() == [Dropped("noise", b"\xff\x00\xfe", 0.0, True)]


def test_at_probe_without_noise_ignored() -> None:
    framer = ScanFramer()
    assert [f.code for f in framer.feed(b"AT\r\nRMA-000123\r\n", 0.0)] == ["RMA-000123"]
    assert [d.reason for d in framer.take_dropped()] == ["ignored"]


def test_ignore_list_configurable() -> None:
    framer = ScanFramer(ignore_frames=("AT", "ATZ", "+++"))
    assert framer.feed(b"ATZ\r+++\rATI\r", 0.0) == [ScanFrame("ATI", None, 0.0, False)]


# -- overflow -----------------------------------------------------------------------


def test_overlong_frame_dropped_and_next_code_intact() -> None:
    framer = ScanFramer(max_length=16)
    assert framer.feed(b"A" * 10, 0.0) == []
    assert framer.feed(b"B" * 100, 1.0) == []
    assert framer.pending == 16  # memory bounded
    frames = framer.feed(b"C\rRMA-1\r", 2.0)
    assert frames == [ScanFrame("RMA-1", None, 2.0, False)]
    assert framer.take_dropped() == [Dropped("overflow", b"A" * 10 + b"B" * 6, 0.0, False)]


def test_frame_of_exactly_max_length_accepted() -> None:
    framer = ScanFramer(max_length=16)
    assert [f.code for f in framer.feed(b"X" * 16 + b"\r", 0.0)] == ["X" * 16]
    assert [f.code for f in framer.feed(b"X" * 17 + b"\r", 0.0)] == []


def test_overlong_stale_fragment_reported_as_overflow() -> None:
    framer = ScanFramer(max_length=4, inter_byte_timeout_ms=100.0)
    framer.feed(b"ABCDEFGH", 0.0)
    assert [d.reason for d in framer.expire(500.0)] == ["overflow"]
    assert framer.feed(b"OK\r", 600.0) == [ScanFrame("OK", None, 600.0, False)]


# -- reset (port lost) --------------------------------------------------------------


def test_reset_discards_partial_frame() -> None:
    framer = ScanFramer()
    assert framer.feed(b"RMA-1\rRMA-PAR", 0.0) == [ScanFrame("RMA-1", None, 0.0, False)]
    assert framer.reset() == [Dropped("reset", b"RMA-PAR", 0.0, False)]
    assert framer.feed(b"TIAL\r", 10.0) == [ScanFrame("TIAL", None, 10.0, False)]
    assert framer.reset() == []


# -- property: chunking never changes the result ------------------------------------

_CODE_CHARS = st.sampled_from([chr(c) for c in range(0x20, 0x7F)] + ["\x1d"])
_codes = st.text(_CODE_CHARS, min_size=1, max_size=40).filter(
    lambda c: c != "AT" and split_aim_prefix(c)[0] is None
)


@settings(max_examples=300, deadline=None)
@given(
    codes=st.lists(_codes, max_size=8),
    terminators=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n\r\n"]), min_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    suffix=st.sampled_from([b"\r", b"\n", b"\r\n"]),
)
def test_arbitrary_chunking_yields_exactly_the_codes(
    codes: list[str], terminators: list[bytes], cuts: list[int], suffix: bytes
) -> None:
    stream = b"".join(
        code.encode("ascii") + term for code, term in zip(codes, terminators, strict=False)
    )
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    framer = ScanFramer(suffix=suffix, inter_byte_timeout_ms=500.0)
    frames: list[ScanFrame] = []
    for i, (a, b) in enumerate(itertools.pairwise(points)):
        frames += framer.feed(stream[a:b], i * 100.0)  # gaps below the timeout
    assert [f.code for f in frames] == codes
    assert framer.take_dropped() == []
    assert framer.pending == 0
