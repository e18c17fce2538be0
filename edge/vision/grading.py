"""Grade a parcel from its top-view photo, or say ``unknown`` when it cannot tell.

Pure functions over images (OpenCV, numpy; zxing-cpp reads the label); ``unknown``
whenever the photo is not one the grader was built for.

Pipeline for one BGR frame (the per-pixel work at a reduced *work* resolution, about
320 px wide; edge profiles at full resolution):

1. **Belt background** (:class:`BackgroundModel`): the per-pixel median of empty-belt
   frames, scaled by the ratio of the frame's border median to the model's (lighting
   drift). The border must match the model (``max_belt_mismatch``), or without a model be
   plain (``max_belt_noise``): a cluttered or textured background is not the belt.
2. **Segmentation**: per-pixel largest channel difference to the background, shadows
   removed (a pixel darker than the belt in every channel by the same factor, 0.25..0.95,
   is the belt in shadow: the chromaticity test of Cucchiara et al., *Detecting moving
   objects, ghosts and shadows in video streams*, IEEE PAMI 25(10), 2003), smoothed,
   thresholded at ``max(diff_min, diff_k * noise)`` and again at half the parcel's own
   contrast (the edge at 50 %), opened and closed; the parcel is the largest connected
   component (holes filled); any other object above ``max_clutter_mm2`` is clutter.
3. **Box fit** (belt plane, mm, through the calibration): the camera sees a box's top face
   magnified about the nadir (the belt point under the camera) by ``k = H / (H - h)``
   (camera height H, box height h), so an intact box's outline is the convex hull of its
   footprint and its magnified top. The fit finds the box axis and the largest ``k`` (up
   to ``1 + max_parallax``) whose model still contains the outline's hull, then the
   smallest ``k`` that gives the same model; ``k = 1`` is a plain rectangle. The footprint
   (mm) is the fitted bottom face; long outline edges off square by more than
   ``max_skew_deg`` that do not point at the nadir mean a tilted view or a wrong
   calibration.
4. **Outline profiles**: ~96 profiles across the outline at full resolution give the
   edge contrast, the share of the outline where the edge is present, and the edge width
   (20-80 % rise, as a Gaussian sigma = width / 1.683; the sharper quartile of the edges
   along and of those across the belt, the worse of the two): motion blur and focus.
5. **Damage measures**: ``rect_fill`` = outline area / fitted model area (crushed
   corners, deformation), ``solidity`` = outline area / convex-hull area (dents, flaps);
   on the top face (label excluded): ``dark_fraction`` = share of compact marks darker
   than ``dark_ratio`` x the surface median *in the board's own chromaticity* (a tear or
   hole shows the same board in shadow); thin dark strokes (print, the flap seam) are not
   damage; compact dark marks in another colour (a filled logo? a hole?) are
   ``mark_fraction``; white-clipped pixels are ``glare_fraction``.
6. **Label**: the largest bright, unsaturated blob on the top face with dark bars in it,
   at least ``min_label_area_mm2``; deskewed by its minimum-area rectangle and decoded by
   zxing-cpp (:func:`decode_barcodes`): first with its rows averaged in pairs (half the
   height, the bars' widths kept), then whole, then at twice the size when the crop
   gives nothing.
7. **Grade**: a backend (:class:`MeasuresBackend`: each measure against the policy's A
   and B limits, the worst decides; or a learned one, :mod:`edge.vision.learned`) gives a
   grade and a raw score, which the policy's calibration curve turns into a confidence
   (:class:`edge.sorter.grading.ConfidenceCurve`). Any abstention check that fired, or a
   confidence below the grade's ``min_confidence_*``, makes the grade ``unknown``; the
   explanation names what fired and what was measured.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
import zxingcpp

from edge.sorter.grading import GradingThresholds
from edge.sorter.physical import Claim, expected_footprint_mm, footprint_matches
from edge.vision.calibration import Calibration
from protocol.codes import split_aim
from protocol.text import NUL

__all__ = [
    "CHECKS",
    "UNKNOWN",
    "BackgroundModel",
    "GradeBackend",
    "Grading",
    "Measures",
    "MeasuresBackend",
    "decode_barcodes",
    "grade_frame",
    "grade_measures",
    "measure",
    "read_codes",
]

UNKNOWN = "unknown"
BORDER_PX = 6
DIFF_MIN = 28.0
DIFF_K = 6.0
WORK_WIDTH = 320
PROFILES = 96
PROFILE_HALF_PX = 10
RADIAL_TOL_DEG = 8.0
CHECKS = (
    "no_parcel",
    "background",
    "partial_view",
    "clutter",
    "scale",
    "footprint",
    "weak_outline",
    "broken_outline",
    "not_square",
    "glare",
    "blur",
    "dark_marks",
    "low_confidence",
)
"""Abstention checks, by the code named in :attr:`Grading.checks`."""

_LINEAR_NAMES = "Code128,Code39,Code93,EAN13,EAN8,UPCA,UPCE,ITF,DataBar,DataBarExpanded"
_LINEAR: Any = zxingcpp.barcode_formats_from_str(_LINEAR_NAMES)
_MATRIX: Any = zxingcpp.barcode_formats_from_str("DataMatrix,QRCode")
_FORMATS: Any = zxingcpp.barcode_formats_from_str(_LINEAR_NAMES + ",DataMatrix,QRCode")


def _border(image: Any, b: int = BORDER_PX) -> Any:
    c = image.shape[-1] if image.ndim == 3 else 1
    img = image.reshape(image.shape[0], image.shape[1], c)
    return np.concatenate(
        [
            img[:b].reshape(-1, c),
            img[-b:].reshape(-1, c),
            img[b:-b, :b].reshape(-1, c),
            img[b:-b, -b:].reshape(-1, c),
        ]
    )


def _work_scale(frame: Any) -> int:
    return max(1, int(frame.shape[1]) // WORK_WIDTH)


def _shrink(image: Any, s: int) -> Any:
    if s == 1:
        return image
    h, w = image.shape[:2]
    interp = cv2.INTER_LINEAR if s == 2 else cv2.INTER_AREA  # at 1/2 both are a 2x2 mean
    return cv2.resize(image, (w // s, h // s), interpolation=interp)


class BackgroundModel:
    """The empty belt: per-pixel median of empty frames (BGR, ``uint8``, one size).

    Args:
        frames: photos of the empty belt (``python -m edge.vision.site capture-belt``).

    Raises:
        ValueError: no frames, or frames of different sizes.
    """

    def __init__(self, frames: list[Any]) -> None:
        if not frames:
            raise ValueError("a background model needs at least one frame")
        if len({np.asarray(f).shape for f in frames}) != 1:
            raise ValueError("background frames must all have the same size")
        stack = np.stack([np.asarray(f, np.float32) for f in frames])
        self.median = np.median(stack, axis=0) if len(frames) > 1 else stack[0]
        self.border = np.median(_border(self.median), axis=0)
        self._small: dict[int, Any] = {}

    def for_frame(self, frame: Any) -> Any:
        """The background expected in ``frame``: the median scaled to its border level."""
        gain = np.median(_border(frame.astype(np.float32)), axis=0) / np.maximum(self.border, 1)
        return self.median * gain

    def small(self, s: int) -> Any:
        """The median at 1/``s`` resolution (float32, cached)."""
        if s not in self._small:
            self._small[s] = _shrink(self.median, s).astype(np.float32)
        return self._small[s]

    def coarse(self, c: int) -> Any:
        """The median at 1/``c`` resolution (uint8), as :func:`measure` samples frames."""
        key = -c
        if key not in self._small:
            h, w = self.median.shape[:2]
            small = cv2.resize(self.median, (w // c, h // c), interpolation=cv2.INTER_LINEAR)
            self._small[key] = _clip_uint8(small)
        return self._small[key]

    def ring_median(self, c: int) -> Any:
        """The per-channel median of :meth:`ring` ((3,), cached)."""
        key = 2000 + c
        if key not in self._small:
            self._small[key] = np.median(self.ring(c), axis=0)
        return self._small[key]

    def ring(self, c: int) -> Any:
        """C x c block means along the border of the median (as :func:`measure` takes)."""
        key = 1000 + c
        if key not in self._small:
            self._small[key] = _ring(self.median, c)
        return self._small[key]


@dataclass(frozen=True)
class Measures:
    """What the pipeline measured on one photo (px in the image, mm on the belt).

    Attributes:
        found: a parcel was segmented.
        touches_border: the parcel outline reaches the image border (not fully in view).
        length_mm / width_mm: footprint (fitted bottom face), long and short side.
        angle_deg: the box axis in the belt plane, degrees.
        area_px: outline area, px (work resolution scaled to full). rect_fill / solidity /
            dark_fraction: see the module doc.
        label_present: a label (bright patch with bars) is on the parcel.
        barcodes: decoded codes (zxing-cpp), in reading order, each as
            ``<AIM identifier><raw data>`` (:func:`decode_barcodes`).
        box_px: the top face's corners (4 x 2, px), for drawing and learned backends.
        parallax: fitted top-face magnification - 1 (0: a flat box or one under the
            camera).
        belt_mismatch: border vs captured empty belt, grey levels (None without model).
        belt_noise: border robust sigma without a model, grey levels (None with one).
        clutter_mm2: the largest other object in view, mm^2 (0: none).
        edge_contrast: median outline contrast, grey levels; outline_coverage: share of
            the outline where the edge is present; edge_blur_mm: edge sigma, mm.
        skew_deg: the largest off-square angle of a long outline edge not explained by
            parallax, degrees.
        glare_fraction / mark_fraction: see the module doc.
        checks: abstention checks that fired, as (code, text) pairs (codes: :data:`CHECKS`).
        complete: every measure was taken (False: :func:`measure` stopped early, after a
            check on the shape fired; the surface and outline measures are 0).
    """

    found: bool
    touches_border: bool = False
    length_mm: float = 0.0
    width_mm: float = 0.0
    angle_deg: float = 0.0
    area_px: float = 0.0
    rect_fill: float = 0.0
    solidity: float = 0.0
    dark_fraction: float = 0.0
    label_present: bool = False
    barcodes: tuple[str, ...] = ()
    box_px: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    parallax: float = 0.0
    belt_mismatch: float | None = None
    belt_noise: float | None = None
    clutter_mm2: float = 0.0
    edge_contrast: float = 0.0
    outline_coverage: float = 0.0
    edge_blur_mm: float = 0.0
    skew_deg: float = 0.0
    glare_fraction: float = 0.0
    mark_fraction: float = 0.0
    checks: tuple[tuple[str, str], ...] = ()
    complete: bool = True


@dataclass(frozen=True)
class Grading:
    """A grade with its confidence (0..1) and a short explanation.

    Attributes:
        grade: A, B, C or ``unknown``.
        confidence: calibrated confidence of ``grade`` (for a low-confidence ``unknown``,
            that of the grade measured; 0 when a check fired).
        explanation: what fired, what was measured, the label.
        measures: the measures.
        measured_grade: the backend's grade before abstention (None: none measured).
        raw_confidence: the backend's raw score (0..1).
        checks: codes of the abstention checks that fired (:data:`CHECKS`).
        backend: the backend that graded.
    """

    grade: str
    confidence: float
    explanation: str
    measures: Measures
    measured_grade: str | None = None
    raw_confidence: float = 0.0
    checks: tuple[str, ...] = ()
    backend: str = "measures"


class GradeBackend(Protocol):
    """A grader's last step: from the photo and its measures to a grade and a raw score.

    ``name`` keys the policy's confidence curves. ``classify`` returns (grade A/B/C, raw
    score 0..1, a short note for the explanation); it is called only for a parcel found
    and fully in view (the abstention checks do not depend on the backend).
    """

    name: str

    def classify(
        self, frame: Any, m: Measures, thresholds: GradingThresholds
    ) -> tuple[str, float, str]:
        """Grade, raw score and note for ``frame`` measured as ``m``."""
        ...


# -- segmentation --------------------------------------------------------------------
@dataclass
class _Belt:
    level: Any  # border median colour (3,)
    gain: Any  # frame / model lighting gain per channel (3,), ones without a model
    mismatch: float | None  # border vs model, grey levels (None without a model)
    noise: float  # robust sigma of the border blocks (against the model or the plane)
    plain_noise: float | None  # the same without a model (the belt must be plain)
    plane: Any = None  # without a model: 6 x 3 quadratic surface coefficients (_design)
    size: tuple[int, int] = (1, 1)  # image (h, w) the surface is fitted on

    def image(self, x0: float, y0: float, step: float, shape: tuple[int, int]) -> Any:
        """The belt surface (uint8 BGR) on a grid: pixel (i, j) at (x0 + j step, y0 + i step).

        The quadratic surface per channel c is across_c(x) + down_c(y) + xy_c x y: one
        matrix product (1, y, down_b, down_g, down_r) (h x 5) by (across, x xy, one-hot
        channel) (5 x 3w), already in pixel order.
        """
        h, w = shape
        hh, ww = self.size
        x = ((x0 + step * np.arange(w, dtype=np.float32)) - ww / 2) / ww
        y = ((y0 + step * np.arange(h, dtype=np.float32)) - hh / 2) / ww
        p = self.plane.astype(np.float32)  # rows: 1, x, y, x^2, y^2, xy (see _design)
        left = np.empty((h, 5), np.float32)  # (row, term): 1, y, down per channel
        left[:, 0] = 1.0
        left[:, 1] = y
        left[:, 2:] = y[:, None] * p[2] + (y * y)[:, None] * p[4]
        right = _one_hot(w).copy()  # (term, column, channel): rows 2..4 one-hot channels
        right[0] = p[0] + x[:, None] * p[1] + (x * x)[:, None] * p[3]
        right[1] = x[:, None] * p[5]
        flat = right.reshape(5, -1)
        img: Any = np.empty((h, 3 * w), np.float32)
        # In row blocks under OpenBLAS's threading threshold (m n k < 2^18): the product
        # is too small to gain from threads, and waking them stalls a grader on a loaded
        # core (the values are the same, row by row).
        rows = max(1, _BLAS_SINGLE // (5 * 3 * w))
        for i in range(0, h, rows):
            np.matmul(left[i : i + rows], flat, out=img[i : i + rows])
        return _clip_uint8(img.reshape(h, w, 3))

    def blocks(self, c: int) -> Any:
        """The belt surface (uint8 BGR) at the centres of the c x c blocks of the image.

        As :meth:`image` on that grid (``x0 = y0 = (c - 1) / 2``, ``step = c``), by one
        product of the cached design there ((n, 6) float32, :func:`_block_design`) with the
        float32 plane (rounded in another order: a value may differ by one grey level).
        """
        h, w = self.size
        design = _block_design(h, w, c)
        return _clip_uint8((design @ self.plane.astype(np.float32)).reshape(h // c, w // c, 3))

    def at(self, xy: Any) -> Any:
        """The belt surface colour (n, 3) at image points ``xy`` (n, 2)."""
        return (_design(xy, self.size) @ self.plane).astype(np.float32)

    def at_xy(self, x: Any, y: Any) -> Any:
        """:meth:`at` of the points (``x``, ``y``) (px, the same number each, any shape)."""
        return (_design_xy(x, y, self.size) @ self.plane).astype(np.float32)


def _clip_uint8(img: Any) -> Any:
    """``np.clip(img, 0, 255).astype(np.uint8)`` of a float32 image (any shape): uint8.

    Clipped by two OpenCV thresholds (above 255 to 255, below 0 to 0: the same float32
    values as np.clip, at a third of its cost), then truncated by numpy's cast as before;
    when the image is already within 0..255 (``cv2.minMaxLoc``, one read: the usual case)
    there is nothing to clip and it is cast at once.
    """
    if img.size:
        lo, hi, _, _ = cv2.minMaxLoc(img.reshape(-1))
        if lo >= 0.0 and hi <= 255.0:
            return img.astype(np.uint8)
    out = cv2.threshold(img, 255, 255, cv2.THRESH_TRUNC)[1]
    return cv2.threshold(out, 0, 0, cv2.THRESH_TOZERO)[1].astype(np.uint8).reshape(img.shape)


@functools.lru_cache(maxsize=16)
def _block_design(h: int, w: int, c: int) -> Any:
    """:func:`_design` (float32, read-only) at the c x c block centres of an h x w image.

    Row-major over the (h // c) x (w // c) blocks, the centre of block (i, j) at
    ((j + 0.5) c - 0.5, (i + 0.5) c - 0.5) px. Cached: one camera, one size.
    """
    ys, xs = np.mgrid[0 : h // c, 0 : w // c]
    design = _design_xy((xs + 0.5) * c - 0.5, (ys + 0.5) * c - 0.5, (h, w)).astype(np.float32)
    design.setflags(write=False)
    return design


@functools.lru_cache(maxsize=16)
def _one_hot(w: int) -> Any:
    """(5, w, 3) float32: rows 0..1 zero, row 2 + c one in channel c (:meth:`_Belt.image`)."""
    right = np.zeros((5, w, 3), np.float32)
    for ch in range(3):
        right[2 + ch, :, ch] = 1.0
    right.setflags(write=False)
    return right


def _design(xy: Any, size: Any) -> Any:
    """Quadratic surface terms (1, x, y, x^2, y^2, xy) of image points, normalised."""
    return _design_xy(xy[:, 0], xy[:, 1], size)


def _design_xy(px: Any, py: Any, size: Any) -> Any:
    """:func:`_design` of the points (``px``, ``py``) ((n,) each, any shape flattened).

    The (n, 6) float64 matrix is filled column by column (C order, as np.column_stack
    gives it, so a product with it is the same product).
    """
    h, w = size[0], size[1]
    x = (np.asarray(px, np.float64).reshape(-1) - w / 2) / w
    y = (np.asarray(py, np.float64).reshape(-1) - h / 2) / w
    out = np.empty((len(x), 6))
    out[:, 0] = 1.0
    out[:, 1] = x
    out[:, 2] = y
    np.multiply(x, x, out=out[:, 3])
    np.multiply(y, y, out=out[:, 4])
    np.multiply(x, y, out=out[:, 5])
    return out


_GREY = np.array([0.114, 0.587, 0.299], np.float32)
_PROFILE_T = np.arange(-PROFILE_HALF_PX, PROFILE_HALF_PX + 1, dtype=np.float32)  # along a normal
_RISE_LEVELS = np.array([0.2, 0.8], np.float32).reshape(2, 1, 1)  # the 20 % and 80 % levels
_BLAS_SINGLE = 200_000  # m n k of a product OpenBLAS computes on one thread (< 4 x 65536)
_K3, _K5, _K7 = (np.ones((k, k), np.uint8) for k in (3, 5, 7))  # morphology kernels


def _quantile(v: Any, q: float) -> float:
    """``np.percentile(v, 100 q)`` (linear interpolation) of a 1-D array, by partition."""
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    part = v.copy(order="K")  # np.partition(v, (lo, hi)), without its wrapper
    part.partition((lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def _median(v: Any, scratch: bool = False) -> float:
    """``np.median`` of a 1-D array, by partition (without its per-call overhead).

    ``scratch``: ``v`` is a temporary the caller no longer needs, partitioned in place
    (otherwise a copy is, as ``np.partition`` takes it).
    """
    n = len(v)
    k = n // 2
    part = v if scratch else v.copy(order="K")
    if n % 2:
        part.partition(k)
        return float(part[k])
    part.partition((k - 1, k))
    return (float(part[k - 1]) + float(part[k])) / 2.0


def _column_medians(v: Any) -> Any:
    """:func:`_median` of each column of an (n, k) array ((k,) float64), one partition."""
    n = len(v)
    k = n // 2
    part = v.copy(order="K")  # np.partition(v, ..., axis=0), without its wrapper
    if n % 2:
        part.partition(k, axis=0)
        return part[k].astype(np.float64)
    part.partition((k - 1, k), axis=0)
    return (part[k - 1].astype(np.float64) + part[k]) / 2.0


def _robust_sigma(v: Any) -> float:
    return _median(np.abs(v - _median(v)), scratch=True) * 1.4826


def _ring(image: Any, c: int) -> Any:
    """Block means along the border: c x c means ((n, 3) float32; :func:`_ring_layout`)."""
    h, w = image.shape[:2]
    nh, nw = h // c, w // c
    img = image[: nh * c, : nw * c]

    # INTER_AREA at 1/c: block means (float32: exact sums, one scale), the top and bottom
    # strips as one image (two block rows), the left and right ones as another (two columns)
    rows = np.concatenate((img[:c], img[-c:])).astype(np.float32)
    cols = np.concatenate((img[c:-c, :c], img[c:-c, -c:]), axis=1).astype(np.float32)
    tb = cv2.resize(rows, (nw, 2), interpolation=cv2.INTER_AREA)
    lr = cv2.resize(cols, (2, nh - 2), interpolation=cv2.INTER_AREA)
    return np.concatenate([tb.reshape(-1, 3), lr[:, 0], lr[:, 1]])


@functools.lru_cache(maxsize=16)
def _ring_layout(h: int, w: int, c: int) -> tuple[Any, Any, Any]:
    """Where :func:`_ring` takes its blocks on an h x w image, and the fit there.

    Block centres ((n, 2) px), the quadratic surface's design matrix at them ((n, 6),
    :func:`_design`) and its pseudo-inverse (the least-squares fit as one product).
    Cached: one camera, one size.
    """
    nh, nw = h // c, w // c
    xs = (np.arange(nw) + 0.5) * c - 0.5
    ys = (np.arange(1, nh - 1) + 0.5) * c - 0.5
    centres = np.concatenate(
        [
            np.column_stack([xs, np.full(nw, c / 2 - 0.5)]),
            np.column_stack([xs, np.full(nw, (nh - 0.5) * c - 0.5)]),
            np.column_stack([np.full(nh - 2, c / 2 - 0.5), ys]),
            np.column_stack([np.full(nh - 2, (nw - 0.5) * c - 0.5), ys]),
        ]
    )
    design = _design(centres, (h, w))
    for a in (centres, design):
        a.setflags(write=False)
    return centres, design, np.linalg.pinv(design)


def _belt(frame: Any, c: int, model: BackgroundModel | None) -> _Belt:
    """Belt statistics from c x c block means along the image border.

    With a model: the lighting gain, the mismatch and the noise against it. Without: a
    plane per channel fitted to the border (lighting falls off smoothly across a belt),
    robustly (a second fit without the blocks off by more than 3 sigma), and the noise
    about it: a plain belt has little.
    """
    fb = _ring(frame, c)
    level = _column_medians(fb).astype(np.float32)
    if model is not None:
        bb = model.ring(c)
        gain = level / np.maximum(model.ring_median(c), 1.0)
        res = fb - bb * gain
        mismatch = _median(_channel_max(np.abs(res)))
        if not (float(np.min(gain)) >= 0.5 and float(np.max(gain)) <= 2.0):
            mismatch = max(mismatch, 255.0)
        return _Belt(level, gain, mismatch, _robust_sigma(res @ _GREY), None)
    _, a, a_pinv = _ring_layout(frame.shape[0], frame.shape[1], c)
    coef = a_pinv @ fb  # 6 x 3: terms x channels (least squares)
    res = (fb - a @ coef) @ _GREY
    dev = np.abs(res - _median(res))  # as _robust_sigma takes it, kept for the outliers
    sigma = _median(dev) * 1.4826
    keep = dev <= 3.0 * max(sigma, 0.5)
    if 3 <= int(np.count_nonzero(keep)) < len(res):
        coef = np.linalg.lstsq(a[keep], fb[keep], rcond=None)[0]
        res = (fb - a @ coef) @ _GREY
        sigma = _robust_sigma(res)
    return _Belt(level, np.ones(3, np.float32), None, sigma, sigma, coef, frame.shape[:2])


def _channel_min(v: Any) -> Any:
    """Row-wise minimum of an (n, 3) array (numpy's axis-1 reduction is slow on 3)."""
    return np.minimum(np.minimum(v[:, 0], v[:, 1]), v[:, 2])


def _channel_max(v: Any) -> Any:
    """Row-wise maximum of an (n, 3) array."""
    return np.maximum(np.maximum(v[:, 0], v[:, 1]), v[:, 2])


def _shadow(f: Any, bg: Any) -> Any:
    """Which rows of ``f`` ((n, 3) float) are the belt ``bg`` in shadow.

    Darker in every channel by about the same factor, 0.25..0.95.
    """
    return _shadow_ratio((f + 1.0) / (bg + 1.0))


def _shadow_ratio(ratio: Any) -> Any:
    """:func:`_shadow` from the ratios ``(f + 1) / (bg + 1)`` ((n, 3) float32)."""
    lo, hi = _channel_min(ratio), _channel_max(ratio)
    return (hi <= 0.95) & (lo >= 0.25) & (hi - lo <= 0.08 + 0.1 * lo)


# ceil(0.95 b) in float32, per grey level b: an integer g is below 0.95 b exactly when it
# is below this (the darker-than-the-belt test as one table look-up and one comparison)
_DARKER_LUT = np.ceil(np.arange(256, dtype=np.float32) * np.float32(0.95)).astype(np.uint8)


def _difference(img: Any, grey: Any, bg: Any) -> Any:
    """Largest channel difference (uint8) of ``img`` to the belt image ``bg`` (both BGR).

    ``grey``: ``img`` in grey. The belt in shadow is zeroed (:func:`_shadow`); only the
    pixels different enough (> ``DIFF_MIN / 2``) and darker than the belt (below 0.95 of
    its grey) are tested, found with whole-image OpenCV operations.
    """
    d = cv2.absdiff(img, bg)
    b, g, r = cv2.split(d)
    diff = cv2.max(cv2.max(b, g), r)
    bg_grey = cv2.cvtColor(bg, cv2.COLOR_BGR2GRAY)
    darker = cv2.compare(grey, cv2.LUT(bg_grey, _DARKER_LUT), cv2.CMP_LT)
    # diff > 14 (DIFF_MIN / 2, uint8) and darker: the shadow candidates
    # (a 0 / 1 mask: read as numpy bool as it is, no comparison pass; nonzero on bool is
    # 10x faster than on uint8)
    different = cv2.threshold(diff, DIFF_MIN / 2, 1, cv2.THRESH_BINARY)[1]
    cand_mask = cv2.bitwise_and(different, darker)
    cand = np.flatnonzero(cand_mask.reshape(-1).view(np.bool_))
    if cand.size:
        # the blur over the rows of the candidates only, and a row either side (a box
        # filter: the same values there; the band's own edges are the image's or unused)
        w = img.shape[1]
        y0 = max(0, int(cand[0]) // w - 1)
        y1 = min(img.shape[0], int(cand[-1]) // w + 2)
        blurred = cv2.blur(img[y0:y1], (3, 3)).reshape(-1, 3)
        # np.take and the ratio in place: the same float32 values as _shadow(f, bgv)
        f = np.take(blurred, cand - y0 * w, axis=0).astype(np.float32)
        bgv = np.take(bg.reshape(-1, 3), cand, axis=0).astype(np.float32)
        f += 1.0
        bgv += 1.0
        diff.reshape(-1)[cand[_shadow_ratio(np.divide(f, bgv, out=f))]] = 0
    return diff


def _hist_median(image: Any, mask: Any) -> float:
    """The median grey level of ``image`` under ``mask`` (uint8 both), from its histogram.

    Over the mask's bounding box only (the same histogram).
    """
    x, y, w, h = cv2.boundingRect(mask)
    if not w:
        return 0.0  # an empty mask (its histogram counts nothing)
    box = slice(y, y + h), slice(x, x + w)
    cum = cv2.calcHist([image[box]], [0], mask[box], [256], [0, 256]).reshape(-1).cumsum()
    total = float(cum[-1])
    return float(cum.searchsorted(total / 2.0)) if total else 0.0


def _segment(small: Any, grey: Any, bg: Any, thr: float) -> Any:
    """Parcel mask (uint8 0/255) of a work-resolution region."""
    diff = cv2.blur(_difference(small, grey, bg), (3, 3))
    mask = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)[1]
    inner = cv2.erode(mask, _K7)
    if cv2.countNonZero(inner):
        contrast = _hist_median(diff, inner)
        if 0.5 * contrast > thr:  # the edge at half the parcel's own contrast
            mask = cv2.threshold(diff, 0.5 * contrast, 255, cv2.THRESH_BINARY)[1]
    # opened (3 x 3) and closed (5 x 5): erode 3, dilate 3 then 5, erode 5, the two
    # dilations as one by 7 x 7 (square kernels, the border outside: the same mask)
    mask = cv2.dilate(cv2.erode(mask, _K3), _K7)
    return cv2.erode(mask, _K5)


# -- box fit in the belt plane ---------------------------------------------------------
def _rot(theta: float) -> Any:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _model(ext: tuple[float, float, float, float], k: float) -> tuple[Any, Any, Any]:
    """Footprint, top face and their hull (box frame, relative to the nadir) for ``k``."""
    xmin, xmax, ymin, ymax = ext
    bx0 = xmin / k if xmin < 0 else xmin
    bx1 = xmax / k if xmax > 0 else xmax
    by0 = ymin / k if ymin < 0 else ymin
    by1 = ymax / k if ymax > 0 else ymax
    bottom = np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]])
    top = bottom * k
    both = np.empty((8, 2), np.float32)  # np.vstack([bottom, top]).astype(np.float32)
    both[:4] = bottom
    both[4:] = top
    hull = cv2.convexHull(both).reshape(-1, 2)
    return bottom, top, hull.astype(np.float64)


def _shift(p: Any, n: int) -> Any:
    """``p`` cyclically shifted: row i of the result is row i + n of ``p``."""
    n %= len(p)
    return np.concatenate([p[n:], p[:n]])


def _next(p: Any) -> Any:
    return _shift(p, 1)


def _poly_area(p: Any) -> float:
    q = _next(p)
    return 0.5 * abs(float((p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]).sum()))


def _contains(poly: Any, pts: Any, tol: float) -> bool:
    """All ``pts`` inside convex ``poly`` (either orientation), ``tol`` mm of slack."""
    q = _next(poly)
    e = q - poly
    rel = pts[None, :, :] - poly[:, None, :]
    cross = e[:, None, 0] * rel[:, :, 1] - e[:, None, 1] * rel[:, :, 0]
    sign = 1.0 if float((poly[:, 0] * q[:, 1] - q[:, 0] * poly[:, 1]).sum()) >= 0 else -1.0
    lengths = np.sqrt(e[:, 0] ** 2 + e[:, 1] ** 2)[:, None]
    return bool((sign * cross >= -tol * lengths).all())


@dataclass
class _Fit:
    theta: float
    k: float
    bottom: Any  # 4 x 2 mm, belt frame
    top: Any  # 4 x 2 mm, belt frame
    area: float


def _fit_k(
    q: Any, ext: tuple[float, float, float, float], max_parallax: float, tol: float
) -> float:
    xmin, xmax, ymin, ymax = ext
    if (xmin < 0 < xmax and ymin < 0 < ymax) or max_parallax <= 0:
        return 1.0  # the nadir is over the box: the model does not depend on k
    lo, hi = 1.0, 1.0 + max_parallax
    if not _contains(_model(ext, hi)[2], q, tol):
        for _ in range(7):
            mid = (lo + hi) / 2
            if _contains(_model(ext, mid)[2], q, tol):
                lo = mid
            else:
                hi = mid
        hi = lo
    # the smallest k with (about) the same model: k is not determined otherwise
    target = _poly_area(_model(ext, hi)[2]) * 1.002
    lo = 1.0
    for _ in range(5):
        mid = (lo + hi) / 2
        if _poly_area(_model(ext, mid)[2]) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _fit_box(hull: Any, nadir: Any, max_parallax: float) -> _Fit:
    """Best intact-box model for a convex outline (mm): see the module doc, step 3."""
    (_, _, rect_angle) = cv2.minAreaRect(hull.astype(np.float32))
    edges = _next(hull) - hull
    longest = edges[int(np.argmax(edges[:, 0] ** 2 + edges[:, 1] ** 2))]
    thetas = [math.radians(rect_angle)]
    alt = math.atan2(longest[1], longest[0])
    diff = math.degrees(alt - thetas[0]) % 90.0
    if min(diff, 90.0 - diff) > 1.0:
        thetas.append(alt)
    tol = max(1.5, 0.01 * math.sqrt(_poly_area(hull)))
    best: _Fit | None = None
    for theta in thetas:
        q = (hull - nadir) @ _rot(-theta).T
        ext = (
            float(q[:, 0].min()),
            float(q[:, 0].max()),
            float(q[:, 1].min()),
            float(q[:, 1].max()),
        )
        k = _fit_k(q, ext, max_parallax, tol)
        bottom, top, model = _model(ext, k)
        area = _poly_area(model)
        if best is None or area < best.area:
            back = _rot(theta)
            best = _Fit(theta, k, bottom @ back.T + nadir, top @ back.T + nadir, area)
    assert best is not None
    return best


def _skew(hull: Any, fit: _Fit, nadir: Any, min_len: float) -> float:
    """The largest off-square angle (deg) of a long hull edge that is not radial."""
    h32 = hull.astype(np.float32)
    poly = cv2.approxPolyDP(h32, max(2.0, 0.01 * cv2.arcLength(h32, True)), True)
    p = poly.reshape(-1, 2).astype(np.float64).tolist()  # Python floats: a few edges
    nx, ny = float(nadir[0]), float(nadir[1])
    worst = 0.0
    for (ax, ay), (bx, by) in zip(p, p[1:] + p[:1], strict=True):
        ex, ey = bx - ax, by - ay
        if math.hypot(ex, ey) < min_len:
            continue
        ang = math.degrees(math.atan2(ey, ex) - fit.theta) % 90.0
        dev = min(ang, 90.0 - ang)
        if dev > 30.0:
            continue
        rx, ry = (ax + bx) / 2 - nx, (ay + by) / 2 - ny
        if math.hypot(rx, ry) > 1e-6:
            rad = abs(math.degrees(math.atan2(ey, ex) - math.atan2(ry, rx))) % 180.0
            if min(rad, 180.0 - rad) < RADIAL_TOL_DEG and fit.k > 1.0:
                continue
        worst = max(worst, dev)
    return worst


# -- outline profiles ----------------------------------------------------------------
def _profiles(
    frame: Any, contour_px: Any, model: BackgroundModel | None, belt: _Belt, cal: Calibration
) -> tuple[float, float, float]:
    """(median edge contrast, share of the outline with an edge, edge sigma in mm)."""
    c = contour_px
    closed = np.concatenate((c, c[:1]))  # np.vstack, without its wrapper
    step_xy = closed[1:] - closed[:-1]
    sx, sy = step_xy[:, 0], step_xy[:, 1]
    seg = np.sqrt(sx * sx + sy * sy)  # np.sum of the squares over 2 columns, without its overhead
    arc = np.empty(len(seg) + 1)  # 0, then the running length (np.concatenate's values)
    arc[0] = 0.0
    np.cumsum(seg, out=arc[1:])
    total = float(arc[-1])
    if total <= 0:
        return 0.0, 0.0, 0.0
    at = np.arange(PROFILES, dtype=np.float64) * (total / PROFILES)  # np.linspace's values
    pts = np.empty((PROFILES, 2))  # np.column_stack's array, filled in place
    pts[:, 0] = np.interp(at, arc, closed[:, 0])
    pts[:, 1] = np.interp(at, arc, closed[:, 1])
    pp = np.concatenate((pts[-1:], pts, pts[:1]))  # cyclic neighbours: pp[i] = pts[i - 1]
    normal = _normals(pp[2:] - pp[:-2])
    if float((normal * (pts - pts.sum(axis=0) / PROFILES)).sum()) < 0:  # pts.mean(axis=0)
        normal = -normal
    # the sample grid, x then y: pts + normal t per profile (float64), as float32 maps
    xy = (pts.T[:, :, None] + normal.T[:, :, None] * _PROFILE_T).astype(np.float32)
    mx, my = xy[0], xy[1]
    v = cv2.remap(frame, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    vf = v.astype(np.float32).reshape(-1, 3)
    if model is not None:
        bgv = cv2.remap(model.median, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bgv = bgv.reshape(-1, 3) * belt.gain
    else:
        bgv = belt.at_xy(mx, my)
    d = _channel_max(np.abs(vf - bgv))
    vf += 1.0  # both float32 and no longer needed: _shadow's ratio in place
    bgv += 1.0
    d[_shadow_ratio(np.divide(vf, bgv, out=vf))] = 0.0  # the box's shadow on the belt is belt
    d = d.reshape(mx.shape)
    inner = d[:, :4].sum(axis=1) / 4  # .mean(axis=1): the same sum, divided exactly
    outer = d[:, -4:].sum(axis=1) / 4
    step = inner - outer
    contrast = _median(step)
    present = step >= max(DIFF_MIN, 0.35 * contrast)
    coverage = float(np.count_nonzero(present)) / len(present)  # np.mean, without its overhead
    if not coverage:
        return contrast, coverage, 0.0
    p = (d[present] - outer[present, None]) / step[present, None]
    # 20-80 % rise, interpolated: soft counts of the samples above each level, both levels
    # at once (float32 as p; np.clip's wrapper costs more than the two ufuncs it amounts
    # to here: p has no NaN)
    levels = (p - _RISE_LEVELS) / 0.1 + 0.5
    np.maximum(levels, 0.0, out=levels)
    np.minimum(levels, 1.0, out=levels)
    counts = levels.sum(axis=2)
    width = counts[0] - counts[1]
    n = np.abs(normal[present])
    blur_px = 0.0
    # Motion blur or defocus widens every edge of an orientation; damage, flaps and
    # print widen some: the sharper quartile of each orientation says which.
    for group in (n[:, 0] >= 0.7, n[:, 1] >= 0.7):
        if int(np.count_nonzero(group)) >= 6:
            blur_px = max(blur_px, _quantile(width[group], 0.25) / 1.683)
    return contrast, coverage, blur_px * cal.mm_per_px


# -- label and surface ---------------------------------------------------------------
def decode_barcodes(
    grey: Any, formats: Any = _FORMATS, try_rotate: bool = False
) -> tuple[str, ...]:
    """Barcodes zxing-cpp decodes in a grey (or BGR) image, as ``<AIM identifier><data>``.

    As a scanner in AIM mode sends them (ISO/IEC 15424: ``]C0``, ``]C1``, ``]E0``,
    ``]e0``, ``]d2``, ``]Q1``, ...), so the code classifier (``protocol.codes``) knows a
    GS1 DataBar or an EAN from a plain Code 128. Formats (default): Code 128, Code 39/93,
    Codabar, EAN/UPC, ITF, GS1 DataBar (Expanded), Data Matrix, QR. Text in zxing-cpp's
    plain mode: the data as encoded, FNC1 as GS (``0x1D``), never the bracketed HRI.
    ``try_rotate``: linear codes at 90 / 180 / 270 degrees too. Repeats are one read.
    A read holding NUL (U+0000, which Code 128 and QR codes can encode) is dropped as
    garbled: no code of ours holds one, PostgreSQL cannot store it, and the gateway
    refuses a message whose text holds it (:func:`protocol.messages.decode`); the parcel
    is decided on its other reads. Other text (non-ASCII, line breaks: a vCard QR) is
    kept for the classifier, which calls it unknown.
    """
    found = zxingcpp.read_barcodes(
        grey, formats=formats, try_rotate=try_rotate, text_mode=zxingcpp.TextMode.Plain
    )
    reads = (b.symbology_identifier + b.text for b in found if b.valid and b.text)
    return tuple(dict.fromkeys(r for r in reads if NUL not in r))


def read_codes(grey: Any, label_rect: Any = None) -> tuple[str, ...]:
    """The camera's label-reading path on a grey frame (what the grader decodes).

    With the label's minimum-area rectangle (``cv2.minAreaRect`` form, full-resolution
    px), the label is straightened and decoded first (:func:`_decode_crop`); when that
    gives nothing, or there is no label, the whole frame in any orientation.
    """
    if label_rect is not None:
        codes = _decode_crop(_read_label(grey, label_rect)[0])
        if codes:
            return codes
    return decode_barcodes(grey, try_rotate=True)


def _read_label(frame: Any, rect: Any) -> tuple[Any, float]:
    """The label crop (grey), rotated upright, and the share of dark (bar) pixels in it.

    ``frame``: BGR or grey; ``rect``: the label's minimum-area rectangle (full-res px).
    """
    (cx, cy), (w, h), angle = rect
    if w < h:
        w, h, angle = h, w, angle + 90.0
    pad = 12
    # grey first, over the frame region the crop samples only (a pixel of margin)
    box = cv2.boxPoints(((cx, cy), (w + 2 * pad, h + 2 * pad), angle))
    fh, fw = frame.shape[:2]
    (bx0, by0), (bx1, by1) = box.min(axis=0).tolist(), box.max(axis=0).tolist()
    x0, y0 = max(0, int(bx0) - 2), max(0, int(by0) - 2)
    x1, y1 = min(fw, int(bx1) + 3), min(fh, int(by1) + 3)
    region = frame[y0:y1, x0:x1]
    if region.size == 0:  # the rectangle lies outside the frame: a blank crop
        return np.full((int(h + 2 * pad), int(w + 2 * pad)), 255, np.uint8), 0.0
    src = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    m = cv2.getRotationMatrix2D((cx - x0, cy - y0), angle, 1.0)
    m[0, 2] += w / 2 + pad - (cx - x0)
    m[1, 2] += h / 2 + pad - (cy - y0)
    size = (int(w + 2 * pad), int(h + 2 * pad))
    grey = cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderValue=255)
    inside = grey[pad:-pad, pad:-pad]
    return grey, float(np.count_nonzero(inside < 128)) / max(inside.size, 1)


def _decode_crop(crop: Any) -> tuple[str, ...]:
    """A label crop: linear codes, at half the height, whole, at twice the size; 2-D codes.

    zxing-cpp scans every row of a crop this small (under 256 rows), so its cost goes with
    the height: rows averaged in pairs (``INTER_AREA``) keep the bars' widths and read at
    about two thirds of the cost; only when they give nothing is the crop read whole.
    """
    h, w = crop.shape[:2]
    if h >= 32:
        codes = decode_barcodes(
            cv2.resize(crop, (w, h // 2), interpolation=cv2.INTER_AREA), _LINEAR
        )
        if codes:
            return codes
    # Bars 2 px wide lose their width ratios in two resamplings; doubled, they decode.
    return (
        decode_barcodes(crop, _LINEAR)
        or decode_barcodes(
            cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC), _LINEAR
        )
        or decode_barcodes(crop, _MATRIX)
    )


def _surface(
    roi: Any,
    grey: Any,
    lo: Any,
    hi: Any,
    top: Any,
    label: Any,
    label_square: bool,
    t: GradingThresholds,
    mm_per_px_work: float,
) -> tuple[float, float, float]:
    """(dark_fraction, mark_fraction, glare_fraction) of the top surface (work res).

    ``lo`` / ``hi``: the ROI's smallest / largest channel per pixel (uint8), as
    :func:`_label` takes them.
    """
    label_marks = 0
    if label is not None:
        surface = cv2.subtract(top, label)  # 0 / 255 masks: the top without the label
        label_marks = _label_holes(grey, label, t, mm_per_px_work)
    else:
        surface = top
    n = int(cv2.countNonZero(surface))
    if n == 0:
        return 0.0, 0.0, 0.0
    lit = surface if label_square or label is None else top
    clipped = cv2.bitwise_and(cv2.threshold(lo, 244, 255, cv2.THRESH_BINARY)[1], lit)
    glare = float(cv2.countNonZero(clipped)) / max(1, int(cv2.countNonZero(lit)))
    med = _hist_median(grey, surface)
    # grey < dark_ratio x med, for integer grey levels: grey <= ceil(that) - 1
    # (0 / 1: the marks as numpy bool without a comparison pass; OpenCV reads any nonzero)
    below = cv2.threshold(grey, math.ceil(t.dark_ratio * med) - 1, 1, cv2.THRESH_BINARY_INV)[1]
    dark = cv2.bitwise_and(below, surface)
    # vivid ink (a red tape, a logo) is print whatever its grey level: left out pixel by
    # pixel, so a tear running under a tape is not taken for the tape's colour
    cand = np.flatnonzero(dark.reshape(-1).view(np.bool_))
    hi_c, lo_c = hi.reshape(-1)[cand].astype(np.int16), lo.reshape(-1)[cand].astype(np.int16)
    dark.reshape(-1)[cand[(hi_c >= 80) & (10 * (hi_c - lo_c) >= 6 * hi_c)]] = 0
    if not cv2.countNonZero(dark):
        return 0.0, label_marks / n, glare
    # the components on the marks' bounding box (the same components as on the whole ROI;
    # the distances on the whole mask: on a crop they may differ by a float ulp)
    x, y, w, h = cv2.boundingRect(dark)
    crop = slice(y, y + h), slice(x, x + w)
    _, labels, stats, _ = _components(dark[crop])
    # specks (under 20 mm^2: noise, dust) never count: only the others are looked at
    areas = stats[:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(areas[1:] * mm_per_px_work**2 >= 20.0) + 1
    if not big.size:
        return 0.0, label_marks / n, glare
    dist = cv2.distanceTransform(dark, cv2.DIST_L2, 3)[crop]
    roi_marks = roi[crop]
    board_chroma: Any = None  # the board's chromaticity, when a compact mark needs it
    tear = mark = 0
    # a mark is a stroke (print, the flap seam, a crease: narrower than stroke_max_mm,
    # 2 x its largest distance to the background - 1 px) unless a pixel of it is that far
    # in: the marks with such a pixel, found for all at once
    wide = np.bincount(labels[dist >= _wide_level(t.stroke_max_mm, mm_per_px_work)])
    for i in big.tolist():
        if i >= len(wide) or not wide[i]:
            continue  # a stroke
        x0, y0, bw, bh, area = stats[i].tolist()
        box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        sel = labels[box] == i  # within the mark's bounding box only
        colour = np.asarray(cv2.mean(roi_marks[box], sel.view(np.uint8))[:3], np.float32)
        top_c, low_c = float(colour.max()), float(colour.min())
        if top_c >= 80.0 and (top_c - low_c) / top_c >= 0.6:
            continue  # vivid ink (a coloured tape, a logo): print, never the board
        if float(colour.sum()) / 3.0 >= 12.0:
            if board_chroma is None:
                board = np.median(roi[surface > 0].reshape(-1, 3)[::7].astype(np.float32), axis=0)
                board_chroma = board / max(float(board.sum()), 1.0)
            chroma = colour / float(colour.sum())
            if float(np.abs(chroma - board_chroma).sum()) <= 0.08:
                tear += area
                continue
        mark += area
    return tear / n, (mark + label_marks) / n, glare


@functools.lru_cache(maxsize=64)
def _wide_level(stroke_mm: float, mm_per_px: float) -> Any:
    """The least float32 distance d (px) with ``(2 d - 1) x mm_per_px >= stroke_mm``.

    In float64 as :func:`_surface` once took each mark's width from its largest distance
    (``cv2.distanceTransform``, float32): a mark is wider than ``stroke_mm`` exactly when
    one of its distances is at least this.
    """

    def wide(d: Any) -> bool:
        return (2.0 * float(d) - 1.0) * mm_per_px >= stroke_mm

    return _least_float32(wide, (stroke_mm / mm_per_px + 1.0) / 2.0)


@functools.lru_cache(maxsize=64)
def _thick_level(stroke_mm: float, mm_per_px: float) -> Any:
    """The least float32 distance d (px) with ``(2 d - 1) x mm_per_px >= stroke_mm``.

    In float32 arrays, as :func:`_label_holes` once computed each pixel's width from its
    ``cv2.distanceTransform`` distance: a pixel is that thick exactly when its distance
    is at least this.
    """

    def thick(d: Any) -> bool:
        width = 2.0 * np.full(1, d, np.float32) - 1.0
        return bool((width * mm_per_px >= stroke_mm)[0])

    return _least_float32(thick, (stroke_mm / mm_per_px + 1.0) / 2.0)


def _least_float32(holds: Callable[[Any], bool], guess: float) -> Any:
    """The least float32 ``d`` for which ``holds(d)``, stepping from ``guess``.

    ``holds`` is monotonic (false below the level, true from it); the search moves one
    float32 value at a time (``numpy.nextafter``), so ``guess`` must be near the level.
    """
    d = np.float32(guess)
    while holds(d):
        d = np.nextafter(d, np.float32(-np.inf))
    while not holds(d):
        d = np.nextafter(d, np.float32(np.inf))
    return d


def _components(mask: Any) -> tuple[int, Any, Any, Any]:
    """``cv2.connectedComponentsWithStats`` (8-connected, int32 labels) of a uint8 mask.

    Grana's block-based algorithm: the same labels as OpenCV's default, 2-3x faster on
    the sparse marks masks (the default picks Spaghetti, made for dense ones).
    """
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)


def _label_holes(grey: Any, label: Any, t: GradingThresholds, mm_per_px_work: float) -> int:
    """Compact dark areas inside the label (px): a tear through it, or a label damaged.

    Bars and text are thin strokes (narrower than ``stroke_max_mm``) and do not count.
    """
    x, y, w, h = cv2.boundingRect(label)  # the label's box and 1 px (erosion, distances)
    box = slice(max(0, y - 1), y + h + 1), slice(max(0, x - 1), x + w + 1)
    label, grey = label[box], grey[box]
    inside = cv2.erode(label, _K3)
    med = _hist_median(grey, inside)
    # grey < med / 2 for integer grey levels: grey <= ceil(med / 2) - 1 (0 / 255 mask)
    below = cv2.threshold(grey, math.ceil(0.5 * med) - 1, 255, cv2.THRESH_BINARY_INV)[1]
    dark = cv2.bitwise_and(below, inside)
    if not cv2.countNonZero(dark):
        return 0
    # thick: width (2 x the distance to the background - 1 px) of stroke_max_mm or more
    dist = cv2.distanceTransform(dark, cv2.DIST_L2, 3)
    level = _thick_level(t.stroke_max_mm, mm_per_px_work)
    if cv2.minMaxLoc(dist)[1] < level:  # no pixel that thick
        return 0
    thick = dist >= level
    # the whole of each dark area that has a thick part
    count, labels, stats, _ = _components(dark)
    has_thick = np.bincount(labels[thick], minlength=count) > 0
    has_thick[0] = False  # the background
    return int(stats[has_thick, cv2.CC_STAT_AREA].sum())


def _label(lo: Any, hi: Any, top: Any, min_area_px: float) -> tuple[Any, Any, bool, bool]:
    """The label blob mask and min-area rectangle (work res, ROI) or Nones, and flags.

    ``lo`` / ``hi``: the ROI's smallest and largest channel per pixel (uint8).

    The first flag says whether the board itself is white (a bright blob over 40 % of the
    top face: then
    it is the board, not a label, and the label cannot be told from it by colour).
    """
    # lo >= 150 and hi - lo <= 60 (uint8 thresholds: > 149, not > 60), on the top (0 / 255)
    light = cv2.threshold(lo, 149, 255, cv2.THRESH_BINARY)[1]
    grey_ish = cv2.threshold(cv2.subtract(hi, lo), 60, 255, cv2.THRESH_BINARY_INV)[1]
    bright = cv2.bitwise_and(cv2.bitwise_and(light, grey_ish), top)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, _K3)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    top_area = max(1.0, float(cv2.countNonZero(top)))
    white = False
    for best in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
        if cv2.contourArea(best) > 0.4 * top_area:
            white = True
            continue
        rect = cv2.minAreaRect(best)
        if rect[1][0] * rect[1][1] < min_area_px:
            break
        mask = np.zeros(top.shape, np.uint8)
        cv2.drawContours(mask, [best], -1, 255, cv2.FILLED)
        # a label is a rectangle; a bright blob that is not may be a label run into glare
        square = cv2.contourArea(best) >= 0.8 * rect[1][0] * rect[1][1]
        return mask, rect, white, square
    return None, None, white, False


def _normals(tangent: Any) -> Any:
    """Unit normals (n, 2) of ``tangent`` (n, 2, float64): (ty, -tx) / |t| (0 where t is 0).

    As ``np.column_stack([ty, -tx])`` divided by ``np.maximum(|t|, 1e-9)``, filled in
    place (the same values).
    """
    tx, ty = tangent[:, 0], tangent[:, 1]
    normal = np.empty_like(tangent)
    normal[:, 0] = ty
    np.negative(tx, out=normal[:, 1])
    normal /= np.maximum(np.sqrt(ty * ty + tx * tx), 1e-9)[:, None]
    return normal


def _smooth_outline(c: Any) -> Any:
    """A traced outline (work px, through boundary pixel centres) as the edge itself.

    The 3-point circular mean removes the pixel staircase; pushing every point half a
    pixel outwards (along its normal) puts it on the edge rather than on the centres of
    the boundary pixels (otherwise the area is short by half a pixel times the perimeter).
    """
    if len(c) < 8:
        return c
    cp = np.concatenate((c[-1:], c, c[:1]))  # cyclic neighbours: cp[i] = c[i - 1]
    m = (cp[:-2] + c + cp[2:]) / 3.0
    mp = np.concatenate((m[-2:], m, m[:2]))  # mp[i] = m[i - 2]
    normal = _normals(mp[4:] - mp[:-4])
    # orientation: outwards is away from the centroid on average (m.mean(axis=0))
    if float((normal * (m - m.sum(axis=0) / len(m))).sum()) < 0:
        normal = -normal
    return m + 0.5 * normal


# -- measure ---------------------------------------------------------------------------
def measure(
    frame: Any,
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    decode: bool = True,
    early_exit: bool = False,
) -> Measures:
    """Measure the parcel in a BGR ``uint8`` frame (see the module doc).

    Every measure is taken even when a check fires (the evaluation and the site tuning
    read them); :func:`grade_measures` decides. With ``early_exit``, a check that fires
    on the shape (background, partial view, clutter, scale, not square) stops the
    measuring before the top surface and the outline profiles (``complete`` False, their
    measures 0): the grade is ``unknown`` whatever they would say. The label is read
    either way.
    """
    t = thresholds
    frame = np.ascontiguousarray(frame, np.uint8)
    h_img, w_img = frame.shape[:2]
    s = _work_scale(frame)
    c = 4 * s
    mmpp = calibration.mm_per_px * s  # mm per work px (mean)
    model = (
        background if background is not None and background.median.shape == frame.shape else None
    )
    # Coarse pass (every c-th pixel): belt statistics, where the parcel is, other objects.
    coarse = cv2.resize(frame, (w_img // c, h_img // c), interpolation=cv2.INTER_LINEAR)
    model_c = model.coarse(c) if model is not None else None
    belt = _belt(frame, c, model)
    checks: list[tuple[str, str]] = []
    if belt.mismatch is not None and belt.mismatch > t.max_belt_mismatch:
        checks.append(
            (
                "background",
                f"belt background does not match the captured empty belt "
                f"(border differs by {belt.mismatch:.0f} grey levels)",
            )
        )
    if belt.plain_noise is not None and belt.plain_noise > t.max_belt_noise:
        checks.append(
            (
                "background",
                f"belt not plain (border noise {belt.plain_noise:.0f} grey levels) "
                "and no empty-belt capture",
            )
        )
    if model_c is not None:
        bg_c: Any = _clip_uint8(model_c * belt.gain)
    else:
        bg_c = belt.blocks(c)
    grey_c = cv2.cvtColor(coarse, cv2.COLOR_BGR2GRAY)
    diff_c = _difference(coarse, grey_c, bg_c)
    # threshold: DIFF_K robust sigmas of the difference along the border (at least DIFF_MIN)
    edge_c = _border(diff_c, 1)[:, 0].astype(np.float32)
    thr = max(DIFF_MIN, _median(edge_c) + DIFF_K * _robust_sigma(edge_c))
    mask_c = cv2.threshold(diff_c, thr, 255, cv2.THRESH_BINARY)[1]
    mask_c = cv2.morphologyEx(mask_c, cv2.MORPH_CLOSE, _K3)
    blobs_c, _ = cv2.findContours(mask_c, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mm2_c = (calibration.mm_per_px * c) ** 2
    ranked = sorted((cv2.contourArea(b) * mm2_c, i) for i, b in enumerate(blobs_c))
    if not ranked or ranked[-1][0] < 2000.0:  # nothing of 20 cm^2
        return Measures(
            False,
            belt_mismatch=belt.mismatch,
            belt_noise=belt.plain_noise,
            checks=(*checks, ("no_parcel", "no parcel found in the photo")),
        )
    clutter = ranked[-2][0] if len(ranked) > 1 else 0.0
    bx, by, bw, bh = cv2.boundingRect(blobs_c[ranked[-1][1]])
    rx0 = max(0, (bx - 2) * c) // s * s
    ry0 = max(0, (by - 2) * c) // s * s
    rx1 = min(w_img, (bx + bw + 2) * c) // s * s
    ry1 = min(h_img, (by + bh + 2) * c) // s * s
    # Work resolution over the parcel's region.
    small = _shrink(frame[ry0:ry1, rx0:rx1], s)
    hs, ws = small.shape[:2]
    ox, oy = rx0 // s, ry0 // s
    if model is not None:
        bg_s: Any = _clip_uint8(model.small(s)[oy : oy + hs, ox : ox + ws] * belt.gain)
    else:
        bg_s = belt.image(rx0 + (s - 1) / 2.0, ry0 + (s - 1) / 2.0, float(s), (hs, ws))
    grey_small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    mask = _segment(small, grey_small, bg_s, thr)
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    areas = [cv2.contourArea(f) for f in found]
    big = [i for i, a in enumerate(areas) if a * mmpp**2 >= 2000.0]
    if not big:
        return Measures(
            False,
            belt_mismatch=belt.mismatch,
            belt_noise=belt.plain_noise,
            checks=(*checks, ("no_parcel", "no parcel found in the photo")),
        )
    contour_i = found[max(big, key=areas.__getitem__)]  # the first of the largest
    x, y, bw2, bh2 = cv2.boundingRect(contour_i)
    touches = (
        (rx0 == 0 and x <= 1)
        or (ry0 == 0 and y <= 1)
        or (rx1 >= w_img - s and x + bw2 >= ws - 1)
        or (ry1 >= h_img - s and y + bh2 >= hs - 1)
    )
    parcel = np.zeros((hs, ws), np.uint8)
    cv2.drawContours(parcel, [contour_i], -1, 255, cv2.FILLED)
    contour = _smooth_outline(contour_i.reshape(-1, 2).astype(np.float64))
    contour_px = (contour + [ox, oy] + 0.5) * s - 0.5
    c_mm = calibration.to_mm(contour_px)
    c32 = c_mm.astype(np.float32)
    area_mm2 = float(cv2.contourArea(c32))
    hull = cv2.convexHull(c32).reshape(-1, 2).astype(np.float64)
    hull_area = max(_poly_area(hull), 1e-9)
    nadir = calibration.nadir_mm((w_img, h_img))
    fit = _fit_box(hull, nadir, t.max_parallax)
    # the two sides' lengths as np.linalg.norm takes them (sqrt of the dot product)
    d01, d12 = fit.bottom[1] - fit.bottom[0], fit.bottom[2] - fit.bottom[1]
    sides = [math.sqrt(float(d01.dot(d01))), math.sqrt(float(d12.dot(d12)))]
    length, width = max(sides), min(sides)
    size = f"{length:.0f}x{width:.0f} mm"
    skew = _skew(hull, fit, nadir, 0.5 * width)
    top_px = calibration.to_px(fit.top)
    # Top surface (work res, ROI): the fitted top face inside the parcel, eroded.
    top = np.zeros((hs, ws), np.uint8)
    poly = np.round(((top_px + 0.5) / s - 0.5 - [ox, oy]) * 4).astype(np.int32)
    cv2.fillPoly(top, [poly.reshape(-1, 1, 2)], 255, cv2.LINE_8, shift=2)
    top = cv2.erode(cv2.bitwise_and(top, parcel), _K5)
    roi = small
    grey_roi = grey_small
    b_ch, g_ch, r_ch = cv2.split(roi)
    lo, hi = cv2.min(cv2.min(b_ch, g_ch), r_ch), cv2.max(cv2.max(b_ch, g_ch), r_ch)
    label_min = t.min_label_area_mm2 / mmpp**2
    label_mask, label_rect, _white_board, label_square = _label(lo, hi, top, label_min)
    codes: tuple[str, ...] = ()
    label_present = False
    if label_rect is not None:
        (lcx, lcy), (lw, lh), la = label_rect
        rect_full = (((lcx + ox + 0.5) * s - 0.5, (lcy + oy + 0.5) * s - 0.5), (lw * s, lh * s), la)
        crop, bars = _read_label(frame, rect_full)
        label_present = 0.05 <= bars <= 0.75
        if label_present and decode:
            codes = _decode_crop(crop)
            if not codes:  # the blob may be only part of the label: its surroundings
                (fx, fy), (fw, fh), _ = rect_full
                r = 0.75 * max(fw, fh)
                ys = slice(max(0, int(fy - r)), int(fy + r))
                xs = slice(max(0, int(fx - r)), int(fx + r))
                codes = decode_barcodes(cv2.cvtColor(frame[ys, xs], cv2.COLOR_BGR2GRAY))
        if not label_present:
            label_mask = None  # a bright patch without bars: glare or white print
    if decode and not codes:
        # no label read: a product code off the label, a rotated 2-D code, a white board
        codes = decode_barcodes(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), try_rotate=True)
    if touches:
        checks.append(("partial_view", f"parcel not fully in view ({size})"))
    if clutter > t.max_clutter_mm2:
        checks.append(("clutter", f"another object in view ({clutter:.0f} mm^2)"))
    if not (t.min_side_mm <= width and length <= t.max_side_mm):
        checks.append(
            (
                "scale",
                f"footprint {size} outside {t.min_side_mm:.0f}..{t.max_side_mm:.0f} mm: "
                "scale or calibration wrong, or not a parcel",
            )
        )
    if skew > t.max_skew_deg:
        checks.append(
            (
                "not_square",
                f"outline {skew:.0f} deg off square: tilted view, wrong calibration "
                "or a deformed box",
            )
        )
    complete = not (early_exit and checks)
    dark = marks = glare = contrast = coverage = blur_mm = 0.0
    if complete:  # the surface and the outline profiles: only when they can still matter
        if label_mask is not None:
            label_mask = cv2.dilate(label_mask, _K5)
        dark, marks, glare = _surface(roi, grey_roi, lo, hi, top, label_mask, label_square, t, mmpp)
        contrast, coverage, blur_mm = _profiles(frame, contour_px, model, belt, calibration)
        checks.extend(_late_checks(contrast, coverage, glare, blur_mm, marks, t))
        checks.sort(key=lambda check: CHECKS.index(check[0]))
    return Measures(
        found=True,
        touches_border=bool(touches),
        length_mm=round(length, 1),
        width_mm=round(width, 1),
        angle_deg=round(math.degrees(fit.theta) % 180.0, 1),
        area_px=float(cv2.contourArea(contour_px.astype(np.float32))),
        rect_fill=round(min(1.0, area_mm2 / max(fit.area, 1e-9)), 4),
        solidity=round(min(1.0, area_mm2 / hull_area), 4),
        dark_fraction=round(dark, 4),
        label_present=label_present,
        barcodes=codes,
        box_px=tuple((float(px), float(py)) for px, py in top_px),
        parallax=round(fit.k - 1.0, 3),
        belt_mismatch=None if belt.mismatch is None else round(belt.mismatch, 1),
        belt_noise=None if belt.plain_noise is None else round(belt.plain_noise, 1),
        clutter_mm2=round(clutter, 0),
        edge_contrast=round(contrast, 1),
        outline_coverage=round(coverage, 3),
        edge_blur_mm=round(blur_mm, 2),
        skew_deg=round(skew, 1),
        glare_fraction=round(glare, 4),
        mark_fraction=round(marks, 4),
        checks=tuple(checks),
        complete=complete,
    )


def _late_checks(
    contrast: float,
    coverage: float,
    glare: float,
    blur_mm: float,
    marks: float,
    t: GradingThresholds,
) -> list[tuple[str, str]]:
    """The checks on the outline profiles and the top surface, as (code, text) pairs."""
    checks = []
    if contrast < t.min_edge_contrast:
        checks.append(("weak_outline", f"weak outline (contrast {contrast:.0f} grey levels)"))
    elif coverage < t.min_outline_coverage:
        checks.append(("broken_outline", f"outline present on {coverage:.0%} of its length"))
    if glare > t.max_glare_fraction:
        checks.append(("glare", f"glare: {glare:.1%} of the top clipped white"))
    if blur_mm > t.max_edge_blur_mm:
        checks.append(("blur", f"motion blur or focus: edges {blur_mm:.1f} mm wide"))
    if marks > t.max_mark_fraction:
        checks.append(("dark_marks", f"dark marks on {marks:.1%} of the top: print or damage?"))
    return checks


# -- grade -----------------------------------------------------------------------------
def _level(value: float, a: float, b: float, higher_is_better: bool) -> int:
    if higher_is_better:
        return 0 if value >= a else 1 if value >= b else 2
    return 0 if value <= a else 1 if value <= b else 2


class MeasuresBackend:
    """The shipped backend: the damage measures against the policy's A and B limits.

    Raw score = 0.5 + 0.5 x (distance to the nearest limit / the measure's scale: the A
    limit's distance to a perfect value for an A measure, the A-B gap otherwise), capped
    at 1, the lowest of the measures; 0.5 on a limit.
    """

    name = "measures"

    def classify(
        self, frame: Any, m: Measures, thresholds: GradingThresholds
    ) -> tuple[str, float, str]:
        """Grade, raw score and the measures as text."""
        t = thresholds
        checks = (
            ("rect_fill", m.rect_fill, t.min_rect_fill_a, t.min_rect_fill_b, True, "corner/shape"),
            ("solidity", m.solidity, t.min_solidity_a, t.min_solidity_b, True, "dent/flap"),
            (
                "dark",
                m.dark_fraction,
                t.max_dark_fraction_a,
                t.max_dark_fraction_b,
                False,
                "tear/tape",
            ),
        )
        worst = 0
        raw = 1.0
        notes = []
        for name, value, a, b, higher, what in checks:
            level = _level(value, a, b, higher)
            worst = max(worst, level)
            perfect = 1.0 if higher else 0.0
            margin = min(abs(value - a), abs(value - b))
            scale = abs(perfect - a) if level == 0 else abs(a - b)
            raw = min(raw, 0.5 + 0.5 * min(1.0, margin / max(scale, 1e-9)))
            mark = "" if level == 0 else f" ({what}: {'B' if level == 1 else 'C'})"
            notes.append(f"{name} {value:.3f}{mark}")
        return "ABC"[worst], raw, "; ".join(notes)


MEASURES = MeasuresBackend()


def grade_measures(
    m: Measures,
    thresholds: GradingThresholds,
    expected_mm: tuple[float, float] | None = None,
    backend: GradeBackend | None = None,
    frame: Any = None,
    claims: Sequence[Claim] = (),
) -> Grading:
    """The grade of measured parcel ``m`` by the policy's thresholds and calibration.

    Args:
        m: the measures of :func:`measure`.
        thresholds: the policy's grading thresholds and confidence curves.
        expected_mm: the expected footprint (two sides, mm, any order), or None.
        backend: the grading backend (default :class:`MeasuresBackend`).
        frame: the photo (needed by image backends).
        claims: the RMA units the parcel claims, when known at grading time: a single
            unit whose RMA line carries catalogue dimensions gives ``expected_mm`` (the
            product's own box: :func:`edge.sorter.physical.expected_footprint_mm`), and
            its line's ``size_tol_mm`` widens ``footprint_tol_mm``.
    """
    t = thresholds
    be = backend or MEASURES
    if not m.found:
        return Grading(
            UNKNOWN, 0.0, "no parcel found in the photo", m, None, 0.0, ("no_parcel",), be.name
        )
    size = f"{m.length_mm:.0f}x{m.width_mm:.0f} mm"
    checks = list(m.checks)
    tol = t.footprint_tol_mm
    if expected_mm is None and claims:
        expected_mm = expected_footprint_mm(claims)
        tol += float(claims[0].line.size_tol_mm or 0)
    if expected_mm is not None and not footprint_matches(
        (m.length_mm, m.width_mm), expected_mm, tol
    ):
        exp = sorted(expected_mm, reverse=True)
        why = f"footprint {size} vs expected {exp[0]:.0f}x{exp[1]:.0f} mm: wrong item?"
        checks.append(("footprint", why))
    label = (
        "label read " + ",".join(split_aim(code)[1] for code in m.barcodes)
        if m.barcodes
        else ("label unread" if m.label_present else "no label")
    )
    if m.touches_border or not m.complete:
        # Not fully in view, or not measured further: the damage measures mean nothing.
        texts = "; ".join(text for _, text in checks)
        return Grading(
            UNKNOWN, 0.0, f"unknown: {texts}", m, None, 0.0, tuple(c for c, _ in checks), be.name
        )
    grade, raw, notes = be.classify(frame, m, t)
    curve = t.curve(be.name, grade)
    confidence = round(curve(raw) if curve is not None else raw, 3)
    measured = f"{grade} {confidence:.2f}: {notes}; {size}; {label}"
    codes = tuple(c for c, _ in checks)
    if checks:
        texts = "; ".join(text for _, text in checks)
        return Grading(
            UNKNOWN, 0.0, f"unknown: {texts} | measured {measured}", m, grade, raw, codes, be.name
        )
    need = t.min_confidence(grade)
    if confidence < need:
        why = f"unknown: grade {grade} at confidence {confidence:.2f} below {need:.2f}"
        why += f" | measured {measured}"
        return Grading(UNKNOWN, confidence, why, m, grade, raw, ("low_confidence",), be.name)
    text = f"grade {grade}: {notes}; {size}; {label}; confidence {confidence:.2f}"
    return Grading(grade, confidence, text, m, grade, raw, (), be.name)


def grade_frame(
    frame: Any,
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    expected_mm: tuple[float, float] | None = None,
    decode: bool = True,
    backend: GradeBackend | None = None,
    claims: Sequence[Claim] = (),
    early_exit: bool = True,
) -> Grading:
    """The whole pipeline on one BGR frame: :func:`measure`, then :func:`grade_measures`.

    ``claims``: the RMA units the parcel claims (their lines' catalogue dimensions give
    the expected footprint), as :func:`grade_measures` takes them. ``early_exit``
    (default): stop measuring once a check on the shape fired (:func:`measure`); the
    grade is ``unknown`` either way, the explanation names those checks only and
    ``measured_grade`` is None. False: every measure and check, as the site's labelling
    wants a suggested grade for each photo.
    """
    m = measure(frame, calibration, thresholds, background, decode, early_exit)
    return grade_measures(m, thresholds, expected_mm, backend, frame, claims)
