"""Synthetic top-view photos of parcels on a belt, labelled with the true grade.

A scene is a belt seen from above at a known scale (``mm_per_px``), with one parcel: a
rotated box of controlled size (mm), colour, lighting (gain and a linear gradient), blur
(Gaussian sigma, px) and sensor noise; optionally a white shipping label carrying a real
Code 128 of the RMA number (encoded by ``zxing-cpp``), and damage:

* ``crushed_corner``: a corner cut off (legs in mm);
* ``dent``: a notch pushed into one side;
* ``open_flap``: a flap standing out of one side (the box's darker inside shows);
* ``tear``: a dark torn patch / broken tape on the top surface.

Severity ``minor`` gives grade B, ``major`` grade C, no damage grade A (the ground truth of
:func:`random_spec`). Everything is deterministic in the spec (its ``seed``).

The conditions real photos have, none of which is damage (``random_spec`` draws them with
``conditions=True``): printed graphics on the top (dark text and a light colour band),
more tape (an H-taping with darker packing tape, or a red warning tape), the flap seam,
a shadow cast on the belt, a box height seen by a camera at ``camera_height_mm`` (its
top magnified about the image centre, side faces visible: parallax), and other belts
(``belt``: ``dark`` rubber, ``green`` PVC, light ``grey``, static ``rollers``). The
hostile conditions a grader must abstain on are separate options (``glare``,
``motion_px``, ``clutter``); :func:`render_empty` renders the same belt without a parcel
(its static pattern, fresh moving texture) for a background model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np
import zxingcpp

__all__ = [
    "BELTS",
    "DAMAGES",
    "ParcelSpec",
    "random_spec",
    "render",
    "render_board",
    "render_empty",
]

Damage = Literal["crushed_corner", "dent", "open_flap", "tear"]
DAMAGES: tuple[Damage, ...] = ("crushed_corner", "dent", "open_flap", "tear")
Belt = Literal["dark", "green", "grey", "rollers"]
BELTS: tuple[Belt, ...] = ("dark", "green", "grey", "rollers")

BELT_BGR = (62, 64, 66)
_BELT_COLOUR: dict[str, tuple[int, int, int]] = {
    "dark": BELT_BGR,
    "green": (70, 105, 60),
    "grey": (120, 122, 124),
    "rollers": (95, 98, 100),
}
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
        product_code: a GS1 element string (``(01)<GTIN-14>``, brackets) printed as
            GS1-128 under the label's Code 128, or None.
        damage: kind of damage, or None; severity ``minor`` or ``major``.
        mm_per_px: the scene's scale. size: image (width, height) px. seed: texture noise.
        jpeg_quality: when set, the image goes through JPEG at this quality (as a camera
            or a stored photo would), else it is returned lossless.
        printed: dark text lines and a light colour band printed on the top (not damage).
        tape: ``"seam"`` (the default single strip), ``"h"`` (H-taping, darker packing
            tape) or ``"warning"`` (a red tape across).
        seam: the flap seam (a thin dark line along the middle).
        shadow_mm: offset (x, y) of the shadow the box casts on the belt, mm; None: none.
        height_mm / camera_height_mm: box height and the camera's height over the belt;
            the top face is magnified about the image centre by H / (H - h) and the side
            faces show (None: a flat top view).
        belt: the belt (:data:`BELTS`).
        glare: a specular highlight on the top (hostile: the grader abstains).
        motion_px: motion blur along the belt (x), px (hostile above ~6 px).
        clutter: another object on the belt beside the parcel (hostile).
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
    product_code: str | None = None
    damage: Damage | None = None
    severity: Literal["minor", "major"] = "minor"
    mm_per_px: float = 1.0
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    jpeg_quality: int | None = None
    extra: dict[str, float] = field(default_factory=dict, compare=False)
    printed: bool = False
    tape: Literal["seam", "h", "warning"] = "seam"
    seam: bool = False
    shadow_mm: tuple[float, float] | None = None
    height_mm: float = 0.0
    camera_height_mm: float | None = None
    belt: Belt = "dark"
    glare: bool = False
    motion_px: float = 0.0
    clutter: bool = False

    @property
    def grade(self) -> str:
        """The true grade: A without damage, B minor, C major."""
        if self.damage is None:
            return "A"
        return "B" if self.severity == "minor" else "C"

    @property
    def magnification(self) -> float:
        """How much larger the top face looks than the footprint (1: flat top view)."""
        if self.camera_height_mm is None or self.height_mm <= 0:
            return 1.0
        return self.camera_height_mm / (self.camera_height_mm - self.height_mm)


def _outline_local(spec: ParcelSpec) -> list[tuple[float, float]]:
    """The box's outline in its own frame (mm, centred), damage applied."""
    hl, hw = spec.length_mm / 2, spec.width_mm / 2
    major = spec.severity == "major"
    if spec.damage == "crushed_corner":
        leg = 130.0 if major else 75.0
        return [(-hl, -hw), (hl - leg, -hw), (hl, -hw + leg), (hl, hw), (-hl, hw)]
    if spec.damage == "dent":
        depth, half = (50.0 if major else 25.0), (70.0 if major else 55.0)
        return [
            (-hl, -hw),
            (-half, -hw),
            (0.0, -hw + depth),
            (half, -hw),
            (hl, -hw),
            (hl, hw),
            (-hl, hw),
        ]
    return [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]


def _place(spec: ParcelSpec, local: list[tuple[float, float]], top: bool = True) -> Any:
    """Image px of box-frame points (mm); ``top``: at the top face's height (magnified)."""
    s = spec.mm_per_px
    a = math.radians(spec.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    w, h = spec.size
    centre = np.array([w / 2 + spec.centre_mm[0] / s, h / 2 + spec.centre_mm[1] / s])
    pts = np.asarray(local, np.float64) / s @ rot.T + centre
    if top and spec.magnification != 1.0:
        nadir = np.array([w / 2, h / 2])
        pts = nadir + (pts - nadir) * spec.magnification
    return pts


def _box_points(spec: ParcelSpec) -> Any:
    """Outline (N x 2 float, px) of the box's top face, damage applied, placed."""
    return _place(spec, _outline_local(spec))


def _fill(shape: tuple[int, int], poly: Any) -> Any:
    """Anti-aliased coverage (float32 0..1) of polygon ``poly`` (px)."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(poly) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return (m.astype(np.float32) / 255.0)[:, :, None]


def _blend(img: Any, alpha: Any, colour: Any) -> Any:
    return img * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def _bars(text: str, module_px: int, gs1: bool = False) -> Any:
    """The Code 128 (GS1-128 with ``gs1``) of ``text`` as bars, ``module_px`` px each."""
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128, gs1=gs1)
    bars: Any = np.asarray(
        zxingcpp.write_barcode_to_image(barcode, scale=1, add_hrt=False, add_quiet_zones=False)
    )
    row = bars[bars.shape[0] // 2]
    return np.repeat(row, module_px)[None, :].repeat(40 * module_px // 3, axis=0)


def _label_patch(text: str, module_px: int, product_code: str | None = None) -> Any:
    """A white label (grey image): the Code 128 of ``text``, ``module_px`` px per bar.

    With ``product_code`` (a GS1 element string in brackets, e.g. ``(01)<GTIN-14>``), its
    GS1-128 below, a quiet zone apart.
    """
    codes = [_bars(text, module_px)]
    if product_code is not None:
        codes.append(_bars(product_code, module_px, gs1=True))
    pad = 6 * module_px
    width = max(c.shape[1] for c in codes) + 2 * pad
    height = sum(c.shape[0] for c in codes) + (len(codes) + 1) * pad
    label = np.full((height, width), 250, np.uint8)
    y = pad
    for code in codes:
        label[y : y + code.shape[0], pad : pad + code.shape[1]] = code
        y += code.shape[0] + pad
    return label


def _belt(spec: ParcelSpec, rng: np.random.Generator) -> Any:
    """The belt: its static pattern, then a fresh moving texture (float32 BGR)."""
    w, h = spec.size
    img = np.empty((h, w, 3), np.float32)
    img[:] = _BELT_COLOUR[spec.belt]
    if spec.belt == "rollers":  # rollers across the belt, static: a background model knows them
        pitch = 60.0 / spec.mm_per_px
        phase = (np.arange(w, dtype=np.float32) % pitch) / pitch
        img *= (0.75 + 0.35 * np.cos(2 * np.pi * phase))[None, :, None]
    else:
        img[:, :, :] += (np.sin(np.arange(w) / 7.0) * 2.0)[None, :, None].astype(np.float32)
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)  # belt texture (moves)
    return img


def render_empty(spec: ParcelSpec, seed: int | None = None) -> Any:
    """The belt of ``spec`` without a parcel (BGR ``uint8``): for a background model.

    ``seed`` draws the belt's moving texture and the sensor noise afresh.
    """
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    img = _belt(spec, rng)
    return _finish(img, replace(spec, glare=False, motion_px=0.0), rng)


def _finish(img: Any, spec: ParcelSpec, rng: np.random.Generator) -> Any:
    """Lighting, blur, noise and JPEG over a composed scene."""
    w, _h = spec.size
    ramp = 1.0 + spec.gradient * (np.arange(w, dtype=np.float32) / w - 0.5)
    img = img * (spec.gain * ramp[None, :, None])
    if spec.blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), spec.blur_px)
    if spec.motion_px >= 1.0:
        n = round(spec.motion_px)
        img = cv2.filter2D(img, -1, np.full((1, n), 1.0 / n, np.float32))
    img += rng.normal(0, spec.noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if spec.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _strip(spec: ParcelSpec, x0: float, x1: float, y0: float, y1: float) -> Any:
    return _place(spec, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def render(spec: ParcelSpec) -> Any:
    """The BGR ``uint8`` image of ``spec`` (size ``spec.size``)."""
    rng = np.random.default_rng(spec.seed)
    w, h = spec.size
    shape = (h, w)
    img = _belt(spec, rng)
    colour = np.array(COLOURS[spec.colour], np.float32)
    local = _outline_local(spec)
    hl, hw = spec.length_mm / 2, spec.width_mm / 2
    major = spec.severity == "major"
    if spec.shadow_mm is not None:  # the box's shadow on the belt, soft-edged
        s = spec.mm_per_px
        foot = _place(spec, local, top=False) + np.array(spec.shadow_mm) / s
        sh = cv2.GaussianBlur(_fill(shape, foot)[:, :, 0], (0, 0), 3.0)[:, :, None]
        img = img * (1 - 0.45 * sh)
    if spec.clutter:  # a dark glove-sized object near the belt edge
        cx, cy = w * 0.12, h * 0.85
        blob = [
            (cx + 45 * math.cos(t) / spec.mm_per_px, cy + 28 * math.sin(t) / spec.mm_per_px)
            for t in np.linspace(0, 2 * math.pi, 12, endpoint=False)
        ]
        img = _blend(img, _fill(shape, blob), (40, 45, 120))
    if spec.damage == "open_flap":
        depth = 70.0 if major else 30.0
        flap = _place(
            spec, [(-hl + 40, hw), (hl - 40, hw), (hl - 60, hw + depth), (-hl + 60, hw + depth)]
        )
        img = _blend(img, _fill(shape, flap), np.clip(colour * 0.8, 0, 255))
    top = _place(spec, local)
    if spec.magnification != 1.0:  # side faces between the footprint and the top
        bottom = _place(spec, local, top=False)
        side = np.clip(colour * 0.72, 0, 255)
        for i in range(len(local)):
            j = (i + 1) % len(local)
            quad = np.array([bottom[i], bottom[j], top[j], top[i]])
            img = _blend(img, _fill(shape, quad), side)
    mask = _fill(shape, top)
    box = np.empty_like(img)
    box[:] = colour * (0.97 + 0.03 * rng.random())
    img = img * (1 - mask) + box * mask
    if spec.printed:  # a light colour band and dark text lines: print, not damage
        band = _strip(spec, -hl + 15, hl - 15, hw - 45, hw - 20)
        img = _blend(
            img, _fill(shape, band) * mask, np.clip(colour * 0.6 + np.array([90, 40, 10]), 0, 255)
        )
        for k in range(3):
            yk = -0.75 * hw + 12 * k
            x = -hl + 20.0
            while x < -hl * 0.1:
                length = float(rng.uniform(6, 22))
                line = _strip(spec, x, x + length, yk, yk + 2.5)
                img = _blend(img, _fill(shape, line) * mask, (30, 30, 35))
                x += length + float(rng.uniform(3, 8))
    if spec.seam:  # the gap between the two major flaps
        img = _blend(img, _fill(shape, _strip(spec, -hl, hl, -1.0, 1.0)) * mask, colour * 0.35)
    tapes = [(-hl, hl, -12.0, 12.0)]
    tape_colour = np.clip(colour * 1.1, 0, 255)
    opacity = 0.35
    if spec.tape == "h":
        tapes += [(-hl, -hl + 48, -hw, hw), (hl - 48, hl, -hw, hw)]
        tape_colour, opacity = np.clip(colour * 0.82, 0, 255), 0.8
    elif spec.tape == "warning":
        tapes = [(-hl * 0.3 - 24, -hl * 0.3 + 24, -hw, hw)]
        tape_colour, opacity = np.array([40, 40, 200], np.float32), 0.95
    for x0, x1, y0, y1 in tapes:
        img = _blend(img, _fill(shape, _strip(spec, x0, x1, y0, y1)) * mask * opacity, tape_colour)
    if spec.label is not None:
        _paste_label(img, spec)
    if spec.damage == "tear":
        size = 50.0 if major else 20.0
        cx = -hl / 2
        n = 9
        pts = []
        for i in range(n):
            r = size * (0.6 + 0.4 * rng.random()) / 2
            t = 2 * math.pi * i / n
            pts.append((cx + r * 1.6 * math.cos(t), -0.55 * hw + r * math.sin(t)))
        img = _blend(img, _fill(shape, _place(spec, pts)), colour * 0.25)
    if spec.glare:  # a specular highlight: clipped white with a soft rim
        g = np.zeros(shape, np.float32)
        c = _place(spec, [(hl * 0.35, hw * 0.3)])[0]
        axes = (int(60 / spec.mm_per_px), int(35 / spec.mm_per_px))
        cv2.ellipse(g, (int(c[0]), int(c[1])), axes, spec.angle_deg, 0, 360, 1.0, -1)
        g = cv2.GaussianBlur(g, (0, 0), 6.0)[:, :, None] * mask
        img = img + g * 400.0
    return _finish(img, spec, rng)


def _paste_label(img: Any, spec: ParcelSpec) -> None:
    assert spec.label is not None
    module_px = 2
    patch = _label_patch(spec.label, module_px, spec.product_code).astype(np.float32)
    ph, pw = patch.shape
    s = spec.mm_per_px
    # Label centred on the box, its bars along the box's length, clipped to the box.
    hl_px, hw_px = spec.length_mm / 2 / s, spec.width_mm / 2 / s
    del s
    if pw > 2 * hl_px - 10 or ph > 2 * hw_px - 10:
        return  # does not fit: no label drawn
    a = math.radians(spec.angle_deg)
    centre = _place(spec, [(0.0, 0.25 * spec.width_mm / 2)])[0]
    cx, cy = float(centre[0]), float(centre[1])
    k = spec.magnification
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), -math.degrees(a), k)
    m[0, 2] += cx - pw / 2
    m[1, 2] += cy - ph / 2
    w, h = spec.size
    warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    cover = cv2.warpAffine(np.ones_like(patch), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[
        :, :, None
    ]
    img[:] = img * (1 - cover) + warped[:, :, None] * cover


def random_spec(
    rng: np.random.Generator, index: int = 0, label: str | None = None, conditions: bool = True
) -> ParcelSpec:
    """A random parcel: size, colour, pose, lighting, blur, label and damage.

    Grade mix: A (no damage) 40 %, B (minor) 30 %, C (major) 30 %; damage kinds even.
    With ``conditions``, also what real photos have (none of it damage): print (40 %),
    H-taping or a warning tape (20 % each), the flap seam (50 %), a shadow (40 %), a box
    height under a camera 1.2..2.0 m up (50 %), another belt (40 %), placed anywhere
    across the view (50 %).
    """
    u = rng.random()
    damage: Damage | None = None
    severity: Literal["minor", "major"] = "minor"
    if u >= 0.4:
        damage = DAMAGES[int(rng.integers(len(DAMAGES)))]
        severity = "minor" if u < 0.7 else "major"
    spec = ParcelSpec(
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
    if not conditions:
        return spec
    v = rng.random(8)
    tape: Literal["seam", "h", "warning"] = (
        "h" if v[1] < 0.2 else "warning" if v[1] < 0.4 else "seam"
    )
    angle = float(rng.uniform(0, 2 * math.pi))
    off_axis = v[6] < 0.5  # anywhere across the view, not only near its centre (parallax)
    centre = (
        (float(rng.uniform(-90, 90)), float(rng.uniform(-45, 45))) if off_axis else spec.centre_mm
    )
    return replace(
        spec,
        centre_mm=centre,
        printed=bool(v[0] < 0.4),
        tape=tape,
        seam=bool(v[2] < 0.5),
        shadow_mm=(12 * math.cos(angle), 12 * math.sin(angle)) if v[3] < 0.4 else None,
        height_mm=float(rng.uniform(80, 300)) if v[4] < 0.5 else 0.0,
        camera_height_mm=float(rng.uniform(1200, 2000)) if v[4] < 0.5 else None,
        belt=BELTS[int(rng.integers(1, len(BELTS)))] if v[5] < 0.4 else "dark",
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
