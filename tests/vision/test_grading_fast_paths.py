"""The grader's fast paths give exactly what the plain numpy they replaced gave.

The speed work of issue 19 replaced per-pixel numpy gathers by whole-image OpenCV
operations; each replacement is checked here against the formula it replaced, on every
input value (uint8) or on masks like the grader's (marks on a top face).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.sorter.grading import GradingThresholds
from edge.vision import grading


def test_darker_table_is_the_float32_comparison_for_every_grey_pair() -> None:
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 256, axis=1)
    belt = np.repeat(np.arange(256, dtype=np.uint8)[None, :], 256, axis=0)
    fast = cv2.compare(grey, cv2.LUT(belt, grading._DARKER_LUT), cv2.CMP_LT) > 0
    plain = grey.astype(np.float32) < belt.astype(np.float32) * 0.95
    assert np.array_equal(fast, plain)
    assert int(np.count_nonzero(fast)) == int(np.count_nonzero(plain)) == 31_128


def test_dark_threshold_is_the_float_comparison_at_every_level() -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for limit in (-3.0, 0.0, 0.4, 1.0, 63.5, 64.0, 152.99, 254.2, 255.0, 255.5, 300.0):
        below = cv2.threshold(grey, math.ceil(limit) - 1, 255, cv2.THRESH_BINARY_INV)[1]
        assert np.array_equal(below > 0, grey < limit), limit


def test_marks_components_on_their_bounding_box_are_those_of_the_whole_mask() -> None:
    rng = np.random.default_rng(19)
    for _ in range(20):
        mask = np.zeros((120, 180), np.uint8)
        for _ in range(int(rng.integers(1, 12))):
            x, y = int(rng.integers(0, 170)), int(rng.integers(0, 110))
            w, h = int(rng.integers(1, 25)), int(rng.integers(1, 12))
            cv2.rectangle(mask, (x, y), (x + w, y + h), 255, cv2.FILLED)
        whole = cv2.connectedComponentsWithStats(mask, connectivity=8)
        x0, y0, w, h = cv2.boundingRect(mask)
        box = slice(y0, y0 + h), slice(x0, x0 + w)
        count, labels, stats, _ = grading._components(mask[box])
        assert count == whole[0]
        # the same components (their numbering may differ: the grader only sums areas)
        for i in range(1, count):
            (j,) = np.unique(whole[1][box][labels == i])
            assert np.array_equal(whole[1][box] == j, labels == i)
            assert stats[i].tolist() == [*(whole[2][j, :2] - [x0, y0]), *whole[2][j, 2:]]


def test_belt_surface_in_row_blocks_is_the_single_product() -> None:
    belt = grading._Belt(
        level=np.zeros(3, np.float32),
        gain=np.ones(3, np.float32),
        mismatch=None,
        noise=0.0,
        plain_noise=0.0,
        plane=np.array(
            [[90, 100, 110], [30, -20, 5], [-15, 25, 8], [40, 12, -30], [-22, 18, 9], [7, -9, 60]],
            np.float64,
        ),
        size=(480, 640),
    )
    h, w = 230, 300  # 230 x 900 x 5: over the one-thread size, so in several blocks
    img = belt.image(3.5, 7.5, 2.0, (h, w))
    x = ((3.5 + 2.0 * np.arange(w, dtype=np.float32)) - 320) / 640
    y = ((7.5 + 2.0 * np.arange(h, dtype=np.float32)) - 240) / 640
    p = belt.plane.astype(np.float32)
    left = np.column_stack([np.ones(h, np.float32), y, y[:, None] * p[2] + (y * y)[:, None] * p[4]])
    right = np.zeros((5, w, 3), np.float32)
    right[0] = p[0] + x[:, None] * p[1] + (x * x)[:, None] * p[3]
    right[1] = x[:, None] * p[5]
    for ch in range(3):
        right[2 + ch, :, ch] = 1.0
    plain = np.clip((left @ right.reshape(5, -1)).reshape(h, w, 3), 0, 255).astype(np.uint8)
    assert img.dtype == np.uint8 and img.shape == (h, w, 3)
    assert np.array_equal(img, plain)


def _plain_label_holes(
    grey: np.ndarray, label: np.ndarray, stroke_max_mm: float, mmpp: float
) -> int:
    """The label holes as the grader took them before the uint8 threshold (numpy masks)."""
    x, y, w, h = cv2.boundingRect(label)
    box = slice(max(0, y - 1), y + h + 1), slice(max(0, x - 1), x + w + 1)
    label, grey = label[box], grey[box]
    inside = cv2.erode(label, np.ones((3, 3), np.uint8))
    med = grading._hist_median(grey, inside)
    dark = ((grey < 0.5 * med) & (inside > 0)).astype(np.uint8)
    if not np.any(dark):
        return 0
    width = 2.0 * cv2.distanceTransform(dark, cv2.DIST_L2, 3) - 1.0
    thick = (width * mmpp >= stroke_max_mm).astype(np.uint8)
    if not np.any(thick):
        return 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    has_thick = np.bincount(labels[thick > 0], minlength=count) > 0
    has_thick[0] = False
    return int(stats[has_thick, cv2.CC_STAT_AREA].sum())


def test_label_holes_by_uint8_threshold_are_those_of_the_float_comparison() -> None:
    t = GradingThresholds()
    rng = np.random.default_rng(23)
    counted = 0
    for _ in range(40):
        grey = np.full((90, 140), int(rng.integers(120, 250)), np.uint8)
        label = np.zeros_like(grey)
        cv2.rectangle(label, (10, 8), (120, 80), 255, cv2.FILLED)
        for _ in range(int(rng.integers(0, 8))):  # bars (thin) and holes (thick)
            x, y = int(rng.integers(12, 110)), int(rng.integers(10, 70))
            w, h = int(rng.integers(1, 14)), int(rng.integers(2, 12))
            level = int(rng.integers(0, 140))
            cv2.rectangle(grey, (x, y), (x + w, y + h), level, cv2.FILLED)
        grey = cv2.add(grey, rng.integers(0, 6, grey.shape, dtype=np.uint8))
        mmpp = float(rng.uniform(0.8, 2.5))
        fast = grading._label_holes(grey, label, t, mmpp)
        assert fast == _plain_label_holes(grey, label, t.stroke_max_mm, mmpp)
        counted += fast > 0
    assert counted > 5  # the masks held holes, not only bars


def test_clip_to_uint8_by_thresholds_is_numpys_clip_and_cast() -> None:
    rng = np.random.default_rng(31)
    edges = np.array([-1e9, -256.0, -1.0, -0.5, -0.0, 0.0, 0.4, 0.99999, 1.0, 127.5, 254.99, 255.0])
    edges = np.concatenate([edges, [255.0001, 255.5, 256.0, 1e9]]).astype(np.float32)
    values = np.concatenate([edges, rng.uniform(-300, 600, 20_000).astype(np.float32)])
    values = np.concatenate([values, np.nextafter(values, np.float32(np.inf))])
    for shape in ((-1,), (40, -1, 3), (1, -1)):
        img = values[: values.size // 120 * 120].reshape(shape)
        fast = grading._clip_uint8(img)
        assert fast.dtype == np.uint8 and fast.shape == img.shape
        assert np.array_equal(fast, np.clip(img, 0, 255).astype(np.uint8))


def test_design_by_columns_is_the_column_stack() -> None:
    rng = np.random.default_rng(37)
    xy = rng.uniform(-50, 700, (500, 2)).astype(np.float32)
    x = (xy[:, 0].astype(np.float64) - 320) / 640
    y = (xy[:, 1].astype(np.float64) - 240) / 640
    plain = np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])
    fast = grading._design_xy(xy[:, 0], xy[:, 1], (480, 640))
    assert fast.flags.c_contiguous and np.array_equal(fast, plain)
    assert np.array_equal(grading._design(xy, (480, 640)), plain)
    plane = rng.normal(0, 50, (6, 3))
    belt = grading._Belt(np.zeros(3), np.ones(3), None, 0.0, 0.0, plane, (480, 640))
    assert np.array_equal(belt.at_xy(xy[:, 0], xy[:, 1]), (plain @ plane).astype(np.float32))


def test_profile_positions_and_normals_are_linspace_and_column_stack() -> None:
    rng = np.random.default_rng(41)
    for total in (1e-3, 1.0, 523.7, float(rng.uniform(100, 3000)), 12345.678):
        plain = np.linspace(0, total, grading.PROFILES, endpoint=False)
        fast = np.arange(grading.PROFILES, dtype=np.float64) * (total / grading.PROFILES)
        assert np.array_equal(fast, plain)
    tangent = rng.normal(0, 3, (300, 2))
    tangent[:3] = 0.0  # a zero tangent: the 1e-9 floor
    plain_n = np.column_stack([tangent[:, 1], -tangent[:, 0]])
    nx, ny = plain_n[:, 0:1], plain_n[:, 1:2]
    plain_n /= np.maximum(np.sqrt(nx * nx + ny * ny), 1e-9)
    assert np.array_equal(grading._normals(tangent), plain_n)
    pts = rng.uniform(0, 640, (grading.PROFILES, 2))
    assert np.array_equal(pts.sum(axis=0) / grading.PROFILES, pts.mean(axis=0))
    d = rng.uniform(0, 255, (grading.PROFILES, 21)).astype(np.float32)
    assert np.array_equal(d[:, :4].sum(axis=1) / 4, d[:, :4].mean(axis=1))
    assert np.array_equal(d[:, -4:].sum(axis=1) / 4, d[:, -4:].mean(axis=1))


def _ulps_about(v: object, n: int = 10) -> list[object]:
    """The float32 ``v`` and the n float32 values either side of it."""
    out, lo, hi = [np.float32(v)], np.float32(v), np.float32(v)
    for _ in range(n):
        lo, hi = np.nextafter(lo, np.float32(-np.inf)), np.nextafter(hi, np.float32(np.inf))
        out += [lo, hi]
    return out


def test_stroke_width_levels_are_the_float_comparisons_at_every_distance() -> None:
    # _surface: a mark is wider than stroke_max_mm when (2 max(d) - 1) mmpp >= it, in
    # float64 from the float32 distances; _label_holes: per pixel, in float32 arrays
    rng = np.random.default_rng(41)
    steps = np.arange(40, dtype=np.float32)[:, None]  # the DIST_L2 (3 x 3) distances
    dist_l2 = (steps * np.float32(0.955) + np.float32(1.3693) * np.arange(4)).ravel()
    for stroke in [GradingThresholds().stroke_max_mm, *rng.uniform(0.5, 12.0, 30).tolist()]:
        for mmpp in [1.0, 2.0, *rng.uniform(0.3, 5.0, 10).tolist()]:
            wide = grading._wide_level(stroke, mmpp)
            thick = grading._thick_level(stroke, mmpp)
            d = np.array([*_ulps_about(wide), *_ulps_about(thick), *dist_l2], np.float32)
            plain_wide = np.array([(2.0 * float(v) - 1.0) * mmpp >= stroke for v in d])
            plain_thick = (2.0 * d - 1.0) * mmpp >= stroke
            assert np.array_equal(d >= wide, plain_wide)
            assert np.array_equal(d >= thick, plain_thick)
