import pytest

from edge.sorter.debounce import Debouncer, Edge
from tests.cases import field_case


def run(
    edges: list[tuple[float, bool]], stable_ms: float = 5.0, until: float = 1000.0
) -> list[Edge]:
    d = Debouncer(stable_ms)
    out: list[Edge] = []
    for t, level in edges:
        out += d.feed(t, level)
    out += d.poll(until)
    return out


def test_c7_bouncing_photo_eye_is_one_parcel_of_150ms() -> None:
    case = field_case("C7_gpio")[0]
    edges = [(float(t), state == "blocked") for t, state in case["photo_eye_edges_ms"]]
    accepted = run(edges)
    assert [e.level for e in accepted] == [True, False]
    assert accepted[0].t_ms == 0.0
    assert accepted[1].t_ms == 150.0
    assert case["expect_parcels"] == 1


def test_short_glitch_is_ignored() -> None:
    assert run([(10.0, True), (12.0, False)]) == []


def test_level_held_exactly_stable_ms_is_accepted_at_first_edge() -> None:
    d = Debouncer(5.0)
    d.feed(10.0, True)
    assert d.poll(14.9) == []
    assert d.next_due_ms() == 15.0
    assert d.poll(15.0) == [Edge(10.0, True)]
    assert d.next_due_ms() is None


def test_stable_ms_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stable_ms"):
        Debouncer(0)


def test_poll_at_next_due_accepts_even_with_float_rounding() -> None:
    d = Debouncer(5.0)
    d.feed(8189.035009917622, True)
    due = d.next_due_ms()
    assert due is not None
    assert d.poll(due) == [Edge(8189.035009917622, True)]
