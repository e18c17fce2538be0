"""Grade a parcel from its top-view photo: pure functions over images.

Pipeline (OpenCV, numpy; zxing-cpp for the barcode), for one BGR frame:

1. **Belt background** (:class:`BackgroundModel`): the per-pixel median of empty-belt
   frames, scaled by the ratio of the frame's border median to the model's (lighting
   drift); without a model, the frame's own border median colour (the parcel is assumed
   not to touch the border).
2. **Segmentation**: per-pixel maximum channel difference to the background above
   ``max(diff_min, diff_k * noise)`` (noise: MAD of the border difference; the difference
   is first smoothed by a Gaussian of sigma 1.5 px against sensor and JPEG noise), then
   again at half the parcel's median contrast (the edge at 50 %), cleaned by a
   morphological opening and closing; the parcel is the largest outer contour, holes
   filled (``cv2.findContours``, ``RETR_EXTERNAL``).
3. **Footprint** (mm): the contour's minimum-area rectangle (``cv2.minAreaRect``) with its
   corners mapped to the belt plane by the calibration (:mod:`edge.vision.calibration`).
4. **Damage measures**: ``rect_fill`` = contour area / rectangle area (crushed corners,
   deformation), ``solidity`` = contour area / convex-hull area (dents; a flap standing out
   lowers it too), ``dark_fraction`` = share of the eroded top surface darker than
   ``dark_ratio`` x its median grey, label excluded (tears, holes, broken tape).
5. **Label**: the largest bright (grey >= 190), unsaturated (HSV S <= 60) blob inside the
   parcel, at least ``min_label_area_mm2``; it is deskewed by its own minimum-area
   rectangle and decoded with zxing-cpp, again at twice the size when the crop gives
   nothing, and then the whole raw frame (any orientation) when neither did: a product
   barcode off the label, a rotated 2-D code (:func:`read_codes`). Formats: the linear
   ones (Code 128, Code 39, Code 93, Codabar, EAN-13, EAN-8, UPC-A, UPC-E, ITF), GS1
   DataBar (omnidirectional, expanded), Data Matrix and QR Code. Each read is returned as
   a scanner in AIM mode sends it: the symbology identifier (ISO/IEC 15424, ``]C0``,
   ``]E0``, ``]d2``, ...) followed by the raw data (FNC1 as GS), so the code classifier
   (``protocol.codes``) knows a GS1 DataBar or an EAN from a plain Code 128.
6. **Grade** (:func:`grade_measures`): each measure against the policy's A and B limits;
   the worst measure decides. Confidence = 0.5 + 0.5 x (distance to the nearest limit /
   the measure's scale: the A limit's distance to a perfect value for an A measure, the
   A-B gap otherwise), capped at 1, the lowest of the measures; 0.5 on a limit.
   No parcel, a parcel cut by the image border, or a footprint off the expected SKU's
   catalogue dimensions by more than ``footprint_tol_mm``: grade ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zxingcpp

from edge.sorter.policy import GradingThresholds
from edge.vision.calibration import Calibration
from protocol.codes import split_aim

__all__ = [
    "BackgroundModel",
    "Grading",
    "Measures",
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
_FORMATS: Any = zxingcpp.barcode_formats_from_str(
    "Code128,Code39,Code93,Codabar,EAN13,EAN8,UPCA,UPCE,ITF,"
    "DataBar,DataBarExpanded,DataMatrix,QRCode"
)


def _border(image: Any) -> Any:
    b = BORDER_PX
    return np.concatenate(
        [
            image[:b].reshape(-1, image.shape[-1]),
            image[-b:].reshape(-1, image.shape[-1]),
            image[:, :b].reshape(-1, image.shape[-1]),
            image[:, -b:].reshape(-1, image.shape[-1]),
        ]
    )


class BackgroundModel:
    """The empty belt: per-pixel median of empty frames (BGR, ``uint8``).

    Args:
        frames: photos of the empty belt, same size.
    """

    def __init__(self, frames: list[Any]) -> None:
        if not frames:
            raise ValueError("a background model needs at least one frame")
        stack = np.stack([np.asarray(f, np.float32) for f in frames])
        self.median = np.median(stack, axis=0)
        self.border = np.median(_border(self.median), axis=0)

    def for_frame(self, frame: Any) -> Any:
        """The background expected in ``frame``: the median scaled to its border level."""
        gain = np.median(_border(frame.astype(np.float32)), axis=0) / np.maximum(self.border, 1)
        return self.median * gain


@dataclass(frozen=True)
class Measures:
    """What the pipeline measured on one photo (px in the image, mm on the belt).

    Attributes:
        found: a parcel was segmented.
        touches_border: the parcel outline reaches the image border (not fully in view).
        length_mm / width_mm: footprint, long and short side of the minimum-area rectangle.
        angle_deg: the rectangle's angle in the image.
        area_px: outline area. rect_fill / solidity / dark_fraction: see the module doc.
        label_present: a label-sized bright patch is on the parcel.
        barcodes: decoded barcodes (zxing-cpp), in reading order, each as
            ``<AIM identifier><raw data>`` (:func:`decode_barcodes`).
        box_px: the rectangle's corners (4 x 2, px) for drawing.
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


@dataclass(frozen=True)
class Grading:
    """A grade with its confidence (0..1) and a short explanation of the measures."""

    grade: str
    confidence: float
    explanation: str
    measures: Measures


def _segment(frame: Any, background: BackgroundModel | None) -> Any:
    frame = np.ascontiguousarray(frame, np.uint8)
    if background is not None and background.median.shape == frame.shape:
        bg = np.clip(background.for_frame(frame), 0, 255).astype(np.uint8)
        d = cv2.absdiff(frame, bg)
    else:
        level = np.median(_border(frame), axis=0).round()
        scalar: Any = (*(float(v) for v in level), 0.0)
        d = cv2.absdiff(frame, scalar)
    b, g, r = cv2.split(d)
    diff = cv2.GaussianBlur(cv2.max(cv2.max(b, g), r).astype(np.float32), (0, 0), 1.5)
    border = _border(diff[:, :, None])[:, 0]
    noise = float(np.median(np.abs(border - np.median(border)))) * 1.4826
    thr = max(DIFF_MIN, DIFF_K * noise)
    mask: Any = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)[1].astype(np.uint8)
    # Second pass: the edge at half the parcel's own contrast (unbiased under blur).
    inner = cv2.erode(mask, np.ones((15, 15), np.uint8))
    if cv2.countNonZero(inner):
        contrast = float(np.median(diff[inner > 0][::4]))  # every 4th pixel is plenty
        thr = max(thr, 0.5 * contrast)
        mask = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)[1].astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    return mask


def decode_barcodes(grey: Any, try_rotate: bool = False) -> tuple[str, ...]:
    """Barcodes zxing-cpp decodes in a grey image, each as ``<AIM identifier><raw data>``.

    ``try_rotate``: also look for linear codes at 90 / 180 / 270 degrees (2-D codes are
    found in any orientation anyway). The text is zxing-cpp's plain text mode: the data
    as encoded, FNC1 as GS (``0x1D``), never the bracketed HRI.
    """
    found = zxingcpp.read_barcodes(
        grey, formats=_FORMATS, try_rotate=try_rotate, text_mode=zxingcpp.TextMode.Plain
    )
    return tuple(dict.fromkeys(b.symbology_identifier + b.text for b in found if b.valid))


def read_codes(grey: Any, label_rect: Any = None) -> tuple[str, ...]:
    """The label-reading path of the camera: what the grader decodes in a grey frame.

    With the label's minimum-area rectangle (``cv2.minAreaRect`` form), the label is
    straightened and decoded first (:func:`_read_label`); when that gives nothing, or
    there is no label, the whole raw frame is decoded in any orientation. Reads as in
    :func:`decode_barcodes`, first found first.
    """
    if label_rect is not None:
        codes = _read_label(grey, label_rect)
        if codes:
            return codes
    return decode_barcodes(grey, try_rotate=True)


def _label(frame: Any, parcel: Any, min_area_px: float) -> tuple[Any, Any]:
    """The label blob mask and its minimum-area rectangle, or (None, None)."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    bright = ((hsv[:, :, 2] >= 190) & (hsv[:, :, 1] <= 60)).astype(np.uint8) * 255
    bright = cv2.bitwise_and(bright, parcel)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None, None
    best = max(contours, key=cv2.contourArea)
    rect = cv2.minAreaRect(best)
    if rect[1][0] * rect[1][1] < min_area_px:
        return None, None
    mask = np.zeros_like(parcel)
    cv2.drawContours(mask, [best], -1, 255, cv2.FILLED)
    return mask, rect


def _read_label(grey: Any, rect: Any) -> tuple[str, ...]:
    """Decode the label after rotating its rectangle upright.

    zxing-cpp reads 1-D codes along image rows, within a few degrees of skew.
    """
    (cx, cy), (w, h), angle = rect
    if w < h:
        w, h, angle = h, w, angle + 90.0
    pad = 12
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += w / 2 + pad - cx
    m[1, 2] += h / 2 + pad - cy
    crop = cv2.warpAffine(
        grey, m, (int(w + 2 * pad), int(h + 2 * pad)), flags=cv2.INTER_CUBIC, borderValue=255
    )
    # Bars 2 px wide lose their width ratios in two resamplings; doubled, they decode.
    return decode_barcodes(crop) or decode_barcodes(
        cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    )


def measure(
    frame: Any,
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    decode: bool = True,
) -> Measures:
    """Measure the parcel in a BGR ``uint8`` frame (see the module doc)."""
    frame = np.asarray(frame)
    h_img, w_img = frame.shape[:2]
    mask = _segment(frame, background)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    min_area_px = 2000.0 / calibration.mm_per_px**2  # ignore blobs under 20 cm^2
    contours = [c for c in contours if cv2.contourArea(c) >= min_area_px]
    if not contours:
        return Measures(found=False)
    contour = max(contours, key=cv2.contourArea)
    area = float(cv2.contourArea(contour))
    parcel = np.zeros((h_img, w_img), np.uint8)
    cv2.drawContours(parcel, [contour], -1, 255, cv2.FILLED)
    x, y, bw, bh = cv2.boundingRect(contour)
    touches = x <= 1 or y <= 1 or x + bw >= w_img - 1 or y + bh >= h_img - 1
    rect = cv2.minAreaRect(contour)
    box = cv2.boxPoints(rect)
    box_mm = calibration.to_mm(box)
    sides = [float(np.linalg.norm(box_mm[i] - box_mm[(i + 1) % 4])) for i in range(2)]
    rect_area = float(rect[1][0] * rect[1][1]) or 1.0
    hull_area = float(cv2.contourArea(cv2.convexHull(contour))) or 1.0
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    label_min_px = thresholds.min_label_area_mm2 / calibration.mm_per_px**2
    label_mask, label_rect = _label(frame, parcel, label_min_px)
    surface = cv2.erode(parcel, np.ones((9, 9), np.uint8))
    if label_mask is not None:
        surface[cv2.dilate(label_mask, np.ones((9, 9), np.uint8)) > 0] = 0
    values = grey[surface > 0]
    dark = 0.0
    if values.size:
        dark = float(np.mean(values < thresholds.dark_ratio * float(np.median(values))))
    codes: tuple[str, ...] = ()
    if decode:
        codes = read_codes(grey, label_rect)
    return Measures(
        found=True,
        touches_border=bool(touches),
        length_mm=round(max(sides), 1),
        width_mm=round(min(sides), 1),
        angle_deg=round(float(rect[2]), 1),
        area_px=area,
        rect_fill=round(area / rect_area, 4),
        solidity=round(area / hull_area, 4),
        dark_fraction=round(dark, 4),
        label_present=label_rect is not None,
        barcodes=codes,
        box_px=tuple((float(px), float(py)) for px, py in box),
    )


def _level(value: float, a: float, b: float, higher_is_better: bool) -> int:
    if higher_is_better:
        return 0 if value >= a else 1 if value >= b else 2
    return 0 if value <= a else 1 if value <= b else 2


def grade_measures(
    m: Measures,
    thresholds: GradingThresholds,
    expected_mm: tuple[float, float] | None = None,
) -> Grading:
    """The grade of measured parcel ``m`` by the policy's thresholds.

    Args:
        m: the measures of :func:`measure`.
        thresholds: the policy's grading thresholds.
        expected_mm: the expected SKU's catalogue footprint (two sides, mm, any order),
            or None when unknown.
    """
    t = thresholds
    if not m.found:
        return Grading(UNKNOWN, 0.0, "no parcel found in the photo", m)
    size = f"{m.length_mm:.0f}x{m.width_mm:.0f} mm"
    if m.touches_border:
        return Grading(UNKNOWN, 0.0, f"parcel not fully in view ({size})", m)
    if expected_mm is not None:
        exp = sorted(expected_mm, reverse=True)
        off = max(abs(m.length_mm - exp[0]), abs(m.width_mm - exp[1]))
        if off > t.footprint_tol_mm:
            why = f"footprint {size} vs expected {exp[0]:.0f}x{exp[1]:.0f} mm: wrong item?"
            return Grading(UNKNOWN, 0.0, why, m)
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
    confidence = 1.0
    notes = []
    for name, value, a, b, higher, what in checks:
        level = _level(value, a, b, higher)
        worst = max(worst, level)
        perfect = 1.0 if higher else 0.0
        margin = min(abs(value - a), abs(value - b))
        scale = abs(perfect - a) if level == 0 else abs(a - b)
        confidence = min(confidence, 0.5 + 0.5 * min(1.0, margin / max(scale, 1e-9)))
        mark = "" if level == 0 else f" ({what}: {'B' if level == 1 else 'C'})"
        notes.append(f"{name} {value:.3f}{mark}")
    grade = "ABC"[worst]
    label = (
        "label read " + ",".join(split_aim(code)[1] for code in m.barcodes)
        if m.barcodes
        else ("label unread" if m.label_present else "no label")
    )
    text = f"grade {grade}: {'; '.join(notes)}; {size}; {label}"
    return Grading(grade, round(confidence, 3), text, m)


def grade_frame(
    frame: Any,
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    expected_mm: tuple[float, float] | None = None,
    decode: bool = True,
) -> Grading:
    """The whole pipeline on one BGR frame: :func:`measure`, then :func:`grade_measures`."""
    return grade_measures(
        measure(frame, calibration, thresholds, background, decode), thresholds, expected_mm
    )
