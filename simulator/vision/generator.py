"""Synthetic top-view photos of parcels on a belt, labelled with the true grade.

A scene is a dark textured belt seen from above at a known scale (``mm_per_px``), with one
parcel: a rotated box of controlled size (mm), colour, lighting (gain and a linear
gradient), blur (Gaussian sigma, px) and sensor noise; optionally a white shipping label
carrying a real Code 128 of the RMA number (encoded by ``zxing-cpp``), and damage:

* ``crushed_corner``: a corner cut off (legs in mm);
* ``dent``: a notch pushed into one side;
* ``open_flap``: a flap standing out of one side (the box's darker inside shows);
* ``tear``: a dark torn patch / broken tape on the top surface.

Severity ``minor`` gives grade B, ``major`` grade C, no damage grade A (the ground truth of
:func:`random_spec`). Everything is deterministic in the spec (its ``seed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np
import zxingcpp

__all__ = ["DAMAGES", "ParcelSpec", "random_spec", "render", "render_board"]

Damage = Literal["crushed_corner", "dent", "open_flap", "tear"]
DAMAGES: tuple[Damage, ...] = ("crushed_corner", "dent", "open_flap", "tear")

BELT_BGR = (62, 64, 66)
COLOURS: dict[str, tuple[int, int, int]] = {
    "kraft": (95, 150, 190),
    "light_kraft": (140, 185, 215),
    "blue": (170, 120, 60),
    "red": (60, 60, 170),
    "green": (90, 150, 90),
    "yellow": (60, 200, 220),
}
"""Parcel colours (BGR)."""


@dataclass(frozen=True)
class ParcelSpec:
    """What to draw; sizes in mm, angles in degrees, image size in px.

    Attributes:
        length_mm, width_mm: the box's top-view footprint (length along the belt).
        angle_deg: rotation on the belt.
        colour: key of :data:`COLOURS`.
        centre_mm: offset of the box centre from the image centre, mm (x, y).
        gain: lighting gain (1 = nominal); gradient: extra gain across the image width.
        blur_px: Gaussian blur sigma, px (0 = sharp). noise: sensor noise sigma, grey levels.
        label: Code 128 text on a white label, or None for no label.
        damage: kind of damage, or None; severity ``minor`` or ``major``.
        mm_per_px: the scene's scale. size: image (width, height) px. seed: texture noise.
        jpeg_quality: when set, the image goes through JPEG at this quality (as a camera
            or a stored photo would), else it is returned lossless.
    """

    length_mm: float = 360.0
    width_mm: float = 220.0
    angle_deg: float = 0.0
    colour: str = "kraft"
    centre_mm: tuple[float, float] = (0.0, 0.0)
    gain: float = 1.0
    gradient: float = 0.0
    blur_px: float = 0.0
    noise: float = 3.0
    label: str | None = "RMA-000123"
    damage: Damage | None = None
    severity: Literal["minor", "major"] = "minor"
    mm_per_px: float = 1.0
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    jpeg_quality: int | None = None
    extra: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def grade(self) -> str:
        """The true grade: A without damage, B minor, C major."""
        if self.damage is None:
            return "A"
        return "B" if self.severity == "minor" else "C"


def _box_points(spec: ParcelSpec) -> Any:
    """Outline (N x 2 float, px) of the box in its own frame, then damaged, then placed."""
    s = spec.mm_per_px
    hl, hw = spec.length_mm / 2 / s, spec.width_mm / 2 / s
    major = spec.severity == "major"
    pts: list[tuple[float, float]]
    if spec.damage == "crushed_corner":
        leg = (130.0 if major else 75.0) / s
        pts = [(-hl, -hw), (hl - leg, -hw), (hl, -hw + leg), (hl, hw), (-hl, hw)]
    elif spec.damage == "dent":
        depth, half = (50.0 if major else 25.0) / s, (70.0 if major else 55.0) / s
        pts = [(-hl, -hw), (-half, -hw), (0.0, -hw + depth), (half, -hw), (hl, -hw), (hl, hw)]
        pts.append((-hl, hw))
    else:
        pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    a = math.radians(spec.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    w, h = spec.size
    centre = np.array([w / 2 + spec.centre_mm[0] / s, h / 2 + spec.centre_mm[1] / s])
    return np.asarray(pts) @ rot.T + centre


def _place(spec: ParcelSpec, local: list[tuple[float, float]]) -> Any:
    s = spec.mm_per_px
    a = math.radians(spec.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    w, h = spec.size
    centre = np.array([w / 2 + spec.centre_mm[0] / s, h / 2 + spec.centre_mm[1] / s])
    return np.asarray(local) / s @ rot.T + centre


def _label_patch(text: str, module_px: int) -> Any:
    """A white label (grey image) with the Code 128 of ``text``, ``module_px`` px per bar."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    bars: Any = np.asarray(
        zxingcpp.write_barcode_to_image(barcode, scale=1, add_hrt=False, add_quiet_zones=False)
    )
    row = bars[bars.shape[0] // 2]
    code = np.repeat(row, module_px)[None, :].repeat(40 * module_px // 3, axis=0)
    pad = 6 * module_px
    label = np.full((code.shape[0] + 2 * pad, code.shape[1] + 2 * pad), 250, np.uint8)
    label[pad : pad + code.shape[0], pad : pad + code.shape[1]] = code
    return label


def render(spec: ParcelSpec) -> Any:
    """The BGR ``uint8`` image of ``spec`` (size ``spec.size``)."""
    rng = np.random.default_rng(spec.seed)
    w, h = spec.size
    img = np.empty((h, w, 3), np.float32)
    img[:] = BELT_BGR
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)  # belt texture
    img[:, :, :] += (np.sin(np.arange(w) / 7.0) * 2.0)[None, :, None].astype(np.float32)
    colour = np.array(COLOURS[spec.colour], np.float32)
    outline = _box_points(spec)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    box = np.empty_like(img)
    box[:] = colour
    # Top lighting falls off slightly towards the box edges (a soft 3-D look).
    box *= 0.97 + 0.03 * rng.random((1, 1, 1), dtype=np.float32)
    hl, hw = spec.length_mm / 2, spec.width_mm / 2
    major = spec.severity == "major"
    if spec.damage == "open_flap":
        depth = 70.0 if major else 30.0
        flap = _place(spec, [(-hl + 40, hw), (hl - 40, hw), (hl - 60, hw + depth)])
        flap = np.vstack([flap, _place(spec, [(-hl + 60, hw + depth)])])
        fm = np.zeros((h, w), np.uint8)
        cv2.fillPoly(fm, [np.round(flap * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        inside = np.clip(colour * 0.8, 0, 255)
        alpha = (fm.astype(np.float32) / 255.0)[:, :, None]
        img = img * (1 - alpha) + inside * alpha
    alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
    img = img * (1 - alpha) + box * alpha
    # Tape along the box's length.
    tape = _place(spec, [(-hl, -12), (hl, -12), (hl, 12), (-hl, 12)])
    tm = np.zeros((h, w), np.uint8)
    cv2.fillPoly(tm, [np.round(tape * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    tm = np.asarray(cv2.bitwise_and(tm, mask), np.uint8)
    tape_alpha = (tm.astype(np.float32) / 255.0)[:, :, None] * 0.35
    img = img * (1 - tape_alpha) + np.clip(colour * 1.1, 0, 255) * tape_alpha
    if spec.label is not None:
        _paste_label(img, spec)
    if spec.damage == "tear":
        size = 50.0 if major else 20.0
        cx = -hl / 2
        n = 9
        local = []
        for i in range(n):
            r = size * (0.6 + 0.4 * rng.random()) / 2
            t = 2 * math.pi * i / n
            local.append((cx + r * 1.6 * math.cos(t), -0.55 * hw + r * math.sin(t)))
        poly = _place(spec, local)
        dm = np.zeros((h, w), np.uint8)
        cv2.fillPoly(dm, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        dark_alpha = (dm.astype(np.float32) / 255.0)[:, :, None]
        img = img * (1 - dark_alpha) + colour * 0.25 * dark_alpha
    # Lighting: gain and a left-to-right gradient over the whole scene.
    ramp = 1.0 + spec.gradient * (np.arange(w, dtype=np.float32) / w - 0.5)
    img *= spec.gain * ramp[None, :, None]
    if spec.blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), spec.blur_px)
    img += rng.normal(0, spec.noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if spec.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _paste_label(img: Any, spec: ParcelSpec) -> None:
    assert spec.label is not None
    module_px = 2
    patch = _label_patch(spec.label, module_px).astype(np.float32)
    ph, pw = patch.shape
    s = spec.mm_per_px
    # Label centred on the box, its bars along the box's length, clipped to the box.
    hl_px, hw_px = spec.length_mm / 2 / s, spec.width_mm / 2 / s
    if pw > 2 * hl_px - 10 or ph > 2 * hw_px - 10:
        return  # does not fit: no label drawn
    a = math.radians(spec.angle_deg)
    w, h = spec.size
    cx = w / 2 + spec.centre_mm[0] / s + 0.25 * hw_px * math.sin(a)
    cy = h / 2 + spec.centre_mm[1] / s + 0.25 * hw_px * math.cos(a)
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), -spec.angle_deg, 1.0)
    m[0, 2] += cx - pw / 2
    m[1, 2] += cy - ph / 2
    warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    cover = cv2.warpAffine(np.ones_like(patch), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[
        :, :, None
    ]
    img[:] = img * (1 - cover) + warped[:, :, None] * cover


def random_spec(rng: np.random.Generator, index: int = 0, label: str | None = None) -> ParcelSpec:
    """A random parcel: size, colour, pose, lighting, blur, label and damage.

    Grade mix: A (no damage) 40 %, B (minor) 30 %, C (major) 30 %; damage kinds even.
    """
    u = rng.random()
    damage: Damage | None = None
    severity: Literal["minor", "major"] = "minor"
    if u >= 0.4:
        damage = DAMAGES[int(rng.integers(len(DAMAGES)))]
        severity = "minor" if u < 0.7 else "major"
    return ParcelSpec(
        length_mm=float(rng.uniform(340, 420)),
        width_mm=float(rng.uniform(170, 260)),
        angle_deg=float(rng.uniform(-15, 15)),
        colour=str(rng.choice(list(COLOURS))),
        centre_mm=(float(rng.uniform(-25, 25)), float(rng.uniform(-15, 15))),
        gain=float(rng.uniform(0.8, 1.2)),
        gradient=float(rng.uniform(-0.2, 0.2)),
        blur_px=float(rng.uniform(0, 1.2)),
        noise=float(rng.uniform(1.5, 4.0)),
        label=label if label is not None else f"RMA-{index:06d}",
        damage=damage,
        severity=severity,
        seed=int(rng.integers(2**31)),
        jpeg_quality=int(rng.integers(70, 96)),
    )


def with_damage(spec: ParcelSpec, damage: Damage | None, severity: str = "minor") -> ParcelSpec:
    """``spec`` with another damage (``minor`` / ``major``)."""
    return replace(spec, damage=damage, severity="major" if severity == "major" else "minor")


def render_board(
    markers_x: int = 4,
    markers_y: int = 3,
    marker_mm: float = 40.0,
    separation_mm: float = 10.0,
    mm_per_px: float = 1.0,
    size: tuple[int, int] = (640, 480),
    dictionary: int = cv2.aruco.DICT_4X4_50,
) -> Any:
    """A BGR belt image with an ArUco grid board lying on it, centred, at ``mm_per_px``.

    The board is ``cv2.aruco.GridBoard`` (4x4_50 dictionary), as the calibration prints.
    """
    board = cv2.aruco.GridBoard(
        (markers_x, markers_y),
        marker_mm,
        separation_mm,
        cv2.aruco.getPredefinedDictionary(dictionary),
    )
    bw = round((markers_x * marker_mm + (markers_x - 1) * separation_mm) / mm_per_px)
    bh = round((markers_y * marker_mm + (markers_y - 1) * separation_mm) / mm_per_px)
    margin = round(separation_mm / mm_per_px)
    art = board.generateImage((bw, bh), marginSize=0, borderBits=1)
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BELT_BGR
    sheet = np.full((bh + 2 * margin, bw + 2 * margin), 255, np.uint8)
    sheet[margin : margin + bh, margin : margin + bw] = art
    y0, x0 = (h - sheet.shape[0]) // 2, (w - sheet.shape[1]) // 2
    img[y0 : y0 + sheet.shape[0], x0 : x0 + sheet.shape[1]] = sheet[:, :, None]
    return img
