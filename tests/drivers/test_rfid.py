"""RFID: UID frames (C1), presence episodes (C2), the MFRC522 driver on the register emulator.

The real ``mfrc522`` library runs against :mod:`simulator.hw.mfrc522_emu` through fake
``spidev`` / ``RPi.GPIO`` modules; our cascade code runs on top of it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.drivers.mfrc522_reader import Mfrc522Reader
from edge.drivers.rfid import (
    PresenceTracker,
    TagRead,
    TagReader,
    TagReadFailed,
    UidError,
    canonical_uid,
    decode_cl_frame,
)
from edge.sorter.model import distinct
from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag
from simulator.testing import wait_until
from tests.cases import field_case


# -- C1: UID identity -------------------------------------------------------------------
def test_c1_level1_frames_decode_to_exact_values() -> None:
    cases = {c["anticoll_level1_hex"]: c for c in field_case("C1_rfid_uid")}
    part, more = decode_cl_frame(bytes.fromhex("88047DB140"))
    assert cases["88047DB140"]["expect"] == "cascade_required"
    assert (part, more) == (bytes.fromhex("047DB1"), True)  # CT is never part of the UID
    part, more = decode_cl_frame(bytes.fromhex("DD17380AF8"))
    assert canonical_uid(part) == cases["DD17380AF8"]["expect_uid"] == "DD17380A"
    assert more is False
    with pytest.raises(UidError) as err:
        decode_cl_frame(bytes.fromhex("DD17380AF9"))
    assert err.value.reason == cases["DD17380AF9"]["expect"] == "bad_bcc"


def test_canonical_uid_is_one_form() -> None:
    assert canonical_uid("dd:17:38:0a") == canonical_uid(b"\xdd\x17\x38\x0a") == "DD17380A"
    assert canonical_uid("04-7d-b1-a2-b3-c4-d5") == "047DB1A2B3C4D5"
    with pytest.raises(ValueError):
        canonical_uid("88047DB1"[:6])


@pytest.fixture
def reader(chip: MFRC522Emulator) -> Mfrc522Reader:
    r = Mfrc522Reader(bus=0, device=0, rst_pin=25, poll_interval_ms=5, poll_deadline_ms=200)
    assert r.self_test() == {"ok": True, "detail": "MFRC522 v2.0 (VersionReg 92h)"}
    return r


def test_reader_implements_the_interface_and_sets_a_5_ms_no_answer_timer(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    assert isinstance(reader, TagReader)
    # the library's init, then TReload = 10 ticks of 0.5 ms (TAuto on, prescaler D3Eh)
    assert (chip.regs[0x2A], chip.regs[0x2B], chip.regs[0x2C], chip.regs[0x2D]) == (
        0x8D,
        0x3E,
        0,
        10,
    )


def test_c1_cascade_reads_4_7_and_10_byte_uids_whole(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    assert reader.poll_once() == ([], [])
    chip.place(VirtualTag(bytes.fromhex("DD17380A"), sak=0x08))
    assert reader.poll_once() == ([("DD17380A", 0x08)], [])
    chip.clear()
    # level-1 answer of this tag is exactly the C1 input 88 04 7D B1 40
    ntag = VirtualTag(bytes.fromhex("047DB1A2B3C4D5"), sak=0x00)
    assert ntag.cl_frame(1) == bytes.fromhex("88047DB140")
    chip.place(ntag)
    assert reader.poll_once() == ([("047DB1A2B3C4D5", 0x00)], [])
    chip.place(VirtualTag(bytes.fromhex("0102030405060708090A"), sak=0x20))
    uids, errors = reader.poll_once()
    assert sorted(uids) == [("0102030405060708090A", 0x20), ("047DB1A2B3C4D5", 0x00)]
    assert errors == []


def test_c1_cascade_tag_without_level_2_is_a_no_read_with_reason(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    chip.place(VirtualTag(bytes.fromhex("047DB1A2B3C4D5"), sak=0x00, mute_from_level=2))
    uids, errors = reader.poll_once()
    assert uids == []
    assert [e.reason for e in errors] == ["cascade_required"]
    assert errors[0].partial == bytes.fromhex("047DB1")  # never a key


def test_c1_wrong_bcc_is_a_bad_read_not_another_tag(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    tag = VirtualTag(bytes.fromhex("DD17380A"), bad_bcc_level=1)
    assert tag.cl_frame(1) == bytes.fromhex("DD17380AF9")
    chip.place(tag)
    uids, errors = reader.poll_once()
    assert uids == [] and [e.reason for e in errors] == ["bad_bcc"]


def test_colliding_tags_are_all_read_by_anticollision(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    for uid in ("11223344", "11223355", "11AA3344", "FF000001"):
        chip.place(VirtualTag(bytes.fromhex(uid)))
    uids, errors = reader.poll_once()
    assert sorted(u for u, _ in uids) == ["11223344", "11223355", "11AA3344", "FF000001"]
    assert errors == []


# -- C2: flicker and blocking reads -------------------------------------------------------
def test_c2_flicker_gives_two_episodes_of_one_tag() -> None:
    case = field_case("C2_flicker")
    tracker = PresenceTracker(absence_misses=case["absence_misses"])
    starts, ends = [], []
    for i, seen in enumerate(case["polls"]):
        arrived, left = tracker.feed([seen] if seen else [])
        starts += [(i * case["poll_ms"], uid, ep) for uid, ep in arrived]
        ends += [(i * case["poll_ms"], uid) for uid in left]
    assert starts == [(0, "A", 1), (180, "A", 2)]
    assert ends == [(160, "A")]
    assert len(starts) == case["expect_presence_episodes"] == 2
    # both episodes carry the same UID: one tag for the parcel in that tracking window
    assert len(distinct([uid for _, uid, _ in starts])) == case["expect_parcels_same_window"]


def test_c2_polling_thread_reports_one_read_per_presence_episode(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    events: list[TagRead | TagReadFailed] = []
    tag = VirtualTag(bytes.fromhex("047DB1A2B3C4D5"), sak=0)
    chip.place(tag)
    reader.start(events.append)
    try:
        wait_until(lambda: reader.status()["present"] == ["047DB1A2B3C4D5"])
        polls = int(reader.status()["polls"])
        wait_until(lambda: int(reader.status()["polls"]) >= polls + 5)
        assert len([e for e in events if isinstance(e, TagRead)]) == 1  # resting tag: one read
        chip.remove(tag)
        wait_until(lambda: reader.status()["present"] == [])  # 3 missed polls end the episode
        chip.place(tag)
        wait_until(lambda: len([e for e in events if isinstance(e, TagRead)]) == 2)
    finally:
        reader.stop()
    reads = [e for e in events if isinstance(e, TagRead)]
    assert [(e.uid, e.sak, e.episode) for e in reads] == [
        ("047DB1A2B3C4D5", 0, 1),
        ("047DB1A2B3C4D5", 0, 2),
    ]
    assert reader.status()["state"] == "stopped"


def test_c2_a_bus_call_that_never_returns_is_reported_not_waited_for(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    reader.poll_deadline_ms = 50
    events: list[TagRead | TagReadFailed] = []
    reader.start(events.append)
    try:
        wait_until(lambda: reader.status()["polls"] >= 2)  # type: ignore[operator]
        chip.hang.set()  # the next SPI transfer blocks
        wait_until(lambda: reader.status()["stalled"] is True)
        st = reader.status()
        assert st["state"] == "degraded" and st["last_error"] == "poll stuck in a bus call"
        chip.hang.clear()
        chip.release.set()
        wait_until(lambda: reader.status()["stalled"] is False)
    finally:
        reader.stop()


def test_poll_past_its_deadline_is_a_timeout_and_errors_reinit_the_chip(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    reader.reinit_after_errors = 3
    events: list[TagRead | TagReadFailed] = []
    chip.spi_errors = 3  # three failing polls in a row
    reader.start(events.append)
    try:
        wait_until(lambda: reader.status()["reinits"] == 1)
        wait_until(lambda: reader.status()["state"] == "ok")
        st = reader.status()
        # resets: the soft reset of the first init, then NRSTPD pulse + soft reset of re-init
        assert (st["poll_errors"], st["reinits"], chip.resets) == (3, 1, 3)
        chip.place(VirtualTag(bytes.fromhex("DD17380A")))
        wait_until(lambda: any(isinstance(e, TagRead) for e in events))
    finally:
        reader.stop()
    assert [e.uid for e in events if isinstance(e, TagRead)] == ["DD17380A"]


def test_self_test_fails_on_a_missing_or_silent_chip(chip: MFRC522Emulator) -> None:
    chip.unplugged = True
    r = Mfrc522Reader(bus=0, device=0, rst_pin=25)
    assert r.self_test() == {
        "ok": False,
        "detail": "VersionReg 00h is not an MFRC522 (chip missing or unwired?)",
    }
    assert r.status()["state"] == "failed"
    absent = Mfrc522Reader(bus=1, device=0, rst_pin=25)
    result = absent.self_test()
    assert result["ok"] is False and "/dev/spidev1.0" in str(result["detail"])


def test_timeout_when_the_chip_never_finishes(chip: MFRC522Emulator, reader: Mfrc522Reader) -> None:
    chip.regs[0x2A] = 0  # TAuto off: no timer interrupt, the poll must end by its deadline
    reader.poll_deadline_ms = 20
    events: list[TagRead | TagReadFailed] = []
    reader._on_read = events.append
    reader._poll_cycle()  # one cycle of the poll thread, run inline
    assert [(type(e).__name__, e.reason) for e in events] == [("TagReadFailed", "timeout")]
    assert reader.status()["timeouts"] == 1


def _iso_uid(raw: bytes) -> bool:
    """ISO/IEC 14443-3 6.5.4: the last level's first UID byte is never the cascade tag 88h."""
    return raw[{4: 0, 7: 3, 10: 6}[len(raw)]] != 0x88


_uid = st.one_of(*(st.binary(min_size=n, max_size=n) for n in (4, 7, 10))).filter(_iso_uid)


def test_cascade_tag_in_the_last_level_is_a_protocol_error_never_a_key(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    chip.place(VirtualTag(bytes.fromhex("00000088000000"), sak=0x00))  # uid3 = 88h
    uids, errors = reader.poll_once()
    assert uids == []
    assert [(e.reason, str(e)) for e in errors] == [
        ("protocol", "protocol: CT and SAK 00h disagree at level 2")
    ]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(uids=st.lists(_uid, min_size=1, max_size=4, unique=True))
def test_any_mix_of_uid_lengths_in_the_field_is_read_whole_in_one_poll(
    chip: MFRC522Emulator, uids: list[bytes]
) -> None:
    chip.clear()
    for uid in uids:
        chip.place(VirtualTag(uid, sak=0x00 if len(uid) > 4 else 0x08))
    reader = Mfrc522Reader(bus=0, device=0, rst_pin=25, max_tags=4, poll_deadline_ms=5000)
    got, errors = reader.poll_once()
    assert errors == []
    assert sorted(u for u, _ in got) == sorted(uid.hex().upper() for uid in uids)
    # each read tag was halted; the next poll's WUPA wakes them all and reads them again
    assert sorted(u for u, _ in reader.poll_once()[0]) == sorted(u for u, _ in got)


def test_unplugged_reader_is_reported_and_read_again_once_back(
    chip: MFRC522Emulator, reader: Mfrc522Reader
) -> None:
    reader.poll_deadline_ms = 10
    reader.reinit_after_errors = 2
    events: list[TagRead | TagReadFailed] = []
    reader.start(events.append)
    try:
        chip.unplugged = True  # MISO reads 00h: no interrupt bit ever comes
        wait_until(lambda: str(reader.status()["last_error"]).startswith("re-init failed"))
        st = reader.status()
        assert st["state"] == "degraded"
        assert st["last_error"] == "re-init failed: VersionReg 00h after reset"
        assert [(type(e).__name__, e.reason) for e in events][:1] == [("TagReadFailed", "timeout")]
        chip.unplugged = False
        chip.place(VirtualTag(bytes.fromhex("0102030405060708090A"), sak=0x20))
        wait_until(lambda: any(isinstance(e, TagRead) for e in events))
        assert reader.status()["state"] == "ok"
    finally:
        reader.stop()
    reads = [(e.uid, e.episode) for e in events if isinstance(e, TagRead)]
    assert reads == [("0102030405060708090A", 1)]
