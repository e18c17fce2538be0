"""Acceptance on the foreign set: photos rendered by another technique, never tuned on.

tests/fixtures/vision/foreign (see its README): 60 photos of simulator.vision.foreign
(seed 424242), a third with a hostile condition. On them no intact parcel may be graded
C and no damaged one A; ``unknown`` is allowed. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.sorter.grading import GradingThresholds
from edge.vision.grading import grade_frame
from edge.vision.tuning import Confusion
from simulator.vision.foreign import SEED, load_fixture, render_foreign

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vision" / "foreign"


def test_no_intact_parcel_graded_c_and_no_damaged_one_a_on_the_foreign_set() -> None:
    c = Confusion()
    hostile_graded = []
    for image, grade, (cal, bg), row in load_fixture(FIXTURE):
        g = grade_frame(image, cal, GradingThresholds(), bg)
        c.add(grade, g)
        if row["hostile"] and g.grade != "unknown":
            hostile_graded.append((row["file"], row["hostile"], g.grade))
    print(f"\nforeign set:\n{c.table()}\nhostile photos graded anyway: {hostile_graded}")
    assert c.total == 60
    assert c.safety() == 0, c.table()
    # the set holds every grade and hostile condition it claims
    assert {t for t, _ in c.counts} == {"A", "B", "C"}


def test_the_renderer_labels_by_construction_and_repeats_itself() -> None:
    a = render_foreign(np.random.default_rng(SEED), 0)
    b = render_foreign(np.random.default_rng(SEED), 0)
    assert a.grade == b.grade and a.damage == b.damage and a.hostile == b.hostile
    assert np.array_equal(a.image, b.image)
    assert a.image.shape == (480, 640, 3)
    assert (a.grade == "A") == (a.damage is None)
