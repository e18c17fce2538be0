"""A *foreign* photo set: parcels rendered by another technique than the generator.

For checking the grader on photos nobody tuned it on.

Where :mod:`simulator.vision.generator` paints 2-D polygons, this module builds each
scene in 3-D and photographs it with a pinhole camera (``K [R | -R C]``, the camera
``height_mm`` over the belt, optionally tilted): every face of the box (an extruded
footprint, damage cut into it) is a texture (procedural kraft board with fibres and
flutes, text printed with OpenCV's Hershey fonts, logos, packing or clear tape, a
shipping label with a real Code 128 from zxing-cpp) mapped into the image by its own
homography (``cv2.warpPerspective``), lit by a directional light (Lambert), with the box's
shadow cast along the light onto a textured belt (rubber, modular plastic grid that moves,
static rollers, green PVC), vignetting, shot and read noise and JPEG, at twice the
resolution then reduced.

Ground truth by construction: no damage = A; minor = B, major = C, with sizes fixed here
before any grading was run (a crushed corner's legs 50..85 / 100..160 mm, a side dent
20..32 / 40..70 mm deep, a flap standing out 30..45 / 60..110 mm, a tear 20..32 /
45..90 mm across). About a third of the photos have one hostile condition the grader must
not guess on (glare, motion blur, part of the box out of view, another object, a camera
tilted without a matching calibration, a camera moved so the calibration's scale is wrong,
under-exposure); the grade is still the box's true one. Seeds are this module's own
(:data:`SEED`); the grader's thresholds are never tuned on this set.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel

__all__ = [
    "SEED",
    "ForeignPhoto",
    "foreign_set",
    "load_fixture",
    "render_foreign",
    "write_fixture",
]

SEED = 424242
SIZE = (640, 480)
SS = 2  # supersampling
HOSTILE = ("glare", "motion", "partial", "clutter", "tilt", "scale", "dark")


@dataclass(frozen=True)
class ForeignPhoto:
    """One foreign photo: the image, its truth and what a site would have configured.

    Attributes:
        image: BGR ``uint8`` (640 x 480).
        grade: the true grade (A, B, C).
        damage: the damage kind or None; hostile: the hostile condition or None.
        calibration: the calibration a site would use (the belt-plane scale of the
            camera it calibrated; wrong on purpose for ``tilt`` and ``scale``).
        background: the empty belt from the same camera (or None: not captured).
    """

    image: Any
    grade: str
    damage: str | None
    hostile: str | None
    calibration: Calibration
    background: BackgroundModel | None


def _kraft(rng: np.random.Generator, shape: tuple[int, int], base: Any) -> Any:
    """Board texture (float32 BGR): fibres along one axis, faint flutes, blotches."""
    h, w = shape
    fib = cv2.GaussianBlur(
        rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigmaX=3, sigmaY=0.5
    )
    blot = cv2.resize(
        rng.normal(0, 1, (max(2, h // 40), max(2, w // 40))).astype(np.float32), (w, h)
    )
    flutes = np.sin(np.arange(w, dtype=np.float32) * 2 * math.pi / 4.0)[None, :] * 0.01
    tex = 1.0 + 0.035 * fib / max(float(fib.std()), 1e-6) + 0.03 * blot + flutes
    return np.asarray(base, np.float32)[None, None, :] * tex[:, :, None]


def _label(rng: np.random.Generator, text: str) -> Any:
    """A shipping label (float32 BGR, 1 px = 0.5 mm): text lines and a Code 128."""
    w, h = 200, 280
    lab = np.full((h, w, 3), 245, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, line in enumerate(("SHIP TO", "RETURNS CENTRE", f"DOCK {rng.integers(1, 9)}")):
        cv2.putText(lab, line, (10, 24 + 22 * i), font, 0.55, (20, 20, 20), 1, cv2.LINE_AA)
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    bars = np.asarray(
        zxingcpp.write_barcode_to_image(code, scale=1, add_hrt=False, add_quiet_zones=False)
    )
    row = np.repeat(bars[bars.shape[0] // 2], 2).astype(np.float32)  # 1 mm modules
    bw = min(row.size, w - 20)
    lab[110:200, 10 : 10 + bw] = row[None, :bw, None].astype(np.uint8)
    cv2.putText(lab, text, (10, 225), font, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.rectangle(lab, (2, 2), (w - 3, h - 3), (60, 60, 60), 1)
    return lab.astype(np.float32)


def _top_texture(
    rng: np.random.Generator, lmm: float, wmm: float, base: Any, spec: dict[str, Any]
) -> Any:
    """The top face texture (float32 BGR, 1 px = 1 mm).

    Everything printed or stuck on but the label (drawn by :func:`_render` at its own
    resolution).
    """
    h, w = int(wmm), int(lmm)
    tex = _kraft(rng, (h, w), base)
    font = rng.choice([cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX])
    if spec["print"]:
        ink = np.array((30, 30, 30) if rng.random() < 0.6 else (140, 60, 20), np.float32)
        text = np.zeros((h, w), np.uint8)
        for i in range(int(rng.integers(1, 4))):
            word = "".join(rng.choice(list("ABCDEFGHKMNPRSTUVWXY"), int(rng.integers(4, 9))))
            org = (int(w * 0.06), int(h * (0.12 + 0.1 * i)))
            cv2.putText(
                text, word, org, int(font), float(rng.uniform(0.5, 0.8)), 255, 1, cv2.LINE_AA
            )
        cv2.putText(
            text,
            "THIS SIDE UP",
            (int(w * 0.6), int(h * 0.92)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            255,
            1,
            cv2.LINE_AA,
        )
        a = (text.astype(np.float32) / 255)[:, :, None]
        tex = tex * (1 - a) + ink * a
    if spec["logo"]:  # a light coloured logo: a ring and a band
        colour = rng.choice([(200, 140, 60), (80, 170, 220), (120, 200, 120)])
        centre = (int(w * 0.8), int(h * 0.25))
        cv2.circle(tex, centre, int(h * 0.09), tuple(float(c) for c in colour), 3, cv2.LINE_AA)
    seam_y = h // 2
    cv2.line(tex, (0, seam_y), (w, seam_y), tuple(float(c) * 0.45 for c in base), 1, cv2.LINE_AA)
    if spec["tape"] != "none":
        tw = int(rng.uniform(48, 55))  # 48..55 mm tape
        y0 = seam_y - tw // 2
        band = tex[y0 : y0 + tw]
        if spec["tape"] == "brown":
            band[:] = band * 0.25 + np.array([70, 120, 165], np.float32) * 0.75
        else:  # clear tape: a slight sheen
            band[:] = band * 0.92 + 255 * 0.08
        streak = int(rng.integers(4, max(5, tw - 4)))
        band[streak : streak + 2] = np.minimum(band[streak : streak + 2] + 35, 255)
    return tex


def _tear_layer(
    rng: np.random.Generator, shape: tuple[int, int], base: Any, size: float
) -> tuple[Any, Any]:
    """A tear through the top face and anything stuck on it: (colour, coverage).

    At the top texture's scale (1 px = 1 mm), drawn over the label too.
    """
    h, w = shape
    d = size  # px
    cx, cy = rng.uniform(d, w - d), rng.uniform(d, h - d)
    n = 13
    pts = []
    for i in range(n):
        r = d / 2 * rng.uniform(0.55, 1.0)
        t = 2 * math.pi * i / n
        pts.append((cx + r * math.cos(t), cy + 0.8 * r * math.sin(t)))
    poly = np.round(np.array(pts)).astype(np.int32)
    hole = np.zeros((h, w), np.uint8)
    cv2.fillPoly(hole, [poly], 255, cv2.LINE_AA)
    rim = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    colour = np.asarray(base, np.float32)[None, None, :] * 1.12 * np.ones((h, w, 1), np.float32)
    inner = _kraft(rng, (h, w), np.asarray(base, np.float32) * 0.32)
    inner *= (0.8 + 0.2 * np.sin(np.arange(w, dtype=np.float32) * 2 * math.pi / 4.0))[None, :, None]
    a = (hole.astype(np.float32) / 255)[:, :, None]
    colour = colour * (1 - a) + inner * a
    return colour, (rim.astype(np.float32) / 255)


def _footprint(spec: dict[str, Any]) -> list[tuple[float, float]]:
    """The footprint polygon (mm, box frame, centred), damage cut in."""
    hl, hw = spec["length"] / 2, spec["width"] / 2
    if spec["damage"] == "crushed_corner":
        a, b = spec["size"], spec["size"] * spec["aspect"]
        return [(-hl, -hw), (hl - a, -hw), (hl, -hw + b), (hl, hw), (-hl, hw)]
    if spec["damage"] == "dent":
        depth, half = spec["size"], spec["dent_half"]
        x = spec["dent_x"]
        return [
            (-hl, -hw),
            (x - half, -hw),
            (x - half * 0.2, -hw + depth),
            (x + half * 0.3, -hw + depth * 0.8),
            (x + half, -hw),
            (hl, -hw),
            (hl, hw),
            (-hl, hw),
        ]
    return [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]


class _Camera:
    def __init__(
        self, height_mm: float, f_px: float, tilt_deg: float, centre_mm: tuple[float, float]
    ) -> None:
        w, h = SIZE[0] * SS, SIZE[1] * SS
        self.k = np.array([[f_px * SS, 0, w / 2], [0, f_px * SS, h / 2], [0, 0, 1]])
        t = math.radians(tilt_deg)
        down = np.diag([1.0, -1.0, -1.0])
        tilt = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
        self.r = tilt @ down
        self.c = np.array([centre_mm[0], centre_mm[1], height_mm])

    def project(self, pts: Any) -> Any:
        p = self.r @ (np.asarray(pts, float) - self.c).T
        q = self.k @ p
        return (q[:2] / q[2]).T

    def depth(self, pts: Any) -> Any:
        return (self.r @ (np.asarray(pts, float) - self.c).T)[2]


def _bbox_homography(img: Any, src: Any, dst: Any) -> tuple[int, int, Any, Any] | None:
    """(x0, y0, size, homography) painting ``src`` onto ``dst`` within its bounding box."""
    h, w = img.shape[:2]
    d: Any = np.asarray(dst, np.float32)
    x0, y0 = (max(0, math.floor(v)) for v in d.min(axis=0))
    x1, y1 = min(w, math.ceil(d[:, 0].max()) + 1), min(h, math.ceil(d[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.asarray([x0, y0], np.float32)
    hmat = cv2.getPerspectiveTransform(np.asarray(src, np.float32), d - shift)
    return x0, y0, (x1 - x0, y1 - y0), hmat


def _warp(img: Any, tex: Any, src: Any, dst: Any, mask_poly: Any | None = None) -> Any:
    """Paint texture ``tex`` (corners ``src``) onto ``img`` at image quad ``dst``.

    Only inside ``mask_poly`` when given; the work is done on the quad's bounding box.
    """
    alpha = np.ones(tex.shape[:2], np.float32)
    return _warp_alpha(img, np.dstack([tex, alpha]), src, dst, mask_poly)


def _warp_alpha(img: Any, layer: Any, src: Any, dst: Any, mask_poly: Any | None) -> Any:
    """:func:`_warp` of a BGRA float layer (alpha 0..1 in the 4th channel)."""
    box = _bbox_homography(img, src, dst)
    if box is None:
        return img
    x0, y0, size, hmat = box
    colour = np.ascontiguousarray(layer[:, :, :3])
    alpha = np.ascontiguousarray(layer[:, :, 3])
    warped = cv2.warpPerspective(colour, hmat, size, flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, hmat, size, flags=cv2.INTER_LINEAR)
    if mask_poly is not None:
        m = np.zeros((size[1], size[0]), np.uint8)
        poly = (np.asarray(mask_poly) - [x0, y0]) * 8
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 255, cv2.LINE_AA, shift=3)
        a = a * (m.astype(np.float32) / 255)
    a3 = a[:, :, None]
    roi = img[y0 : y0 + size[1], x0 : x0 + size[0]]
    img[y0 : y0 + size[1], x0 : x0 + size[0]] = roi * (1 - a3) + warped * a3
    return img


def _belt_texture(rng: np.random.Generator, kind: str, phase_mm: float, extent: float) -> Any:
    """The belt as a texture, 1 px = 2 mm, covering [-extent, extent]^2 (float32 BGR)."""
    n = int(extent)
    base = {
        "rubber": (48, 50, 52),
        "modular": (150, 150, 146),
        "rollers": (105, 108, 112),
        "pvc": (60, 100, 55),
    }[kind]
    tex = np.empty((n, n, 3), np.float32)
    tex[:] = base
    grain = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), 0.8)
    tex *= (1.0 + 0.06 * grain)[:, :, None]
    x = 2.0 * np.arange(n, dtype=np.float32) - extent + phase_mm
    if kind == "modular":
        lines = (np.abs((x % 25.0) - 12.5) > 10.5).astype(np.float32)
        tex *= (1.0 - 0.25 * lines)[None, :, None]
        tex *= (1.0 - 0.25 * lines)[:, None, None]
    elif kind == "rollers":
        xr = 2.0 * np.arange(n, dtype=np.float32) - extent  # rollers do not move
        tex *= (0.7 + 0.4 * np.cos(2 * math.pi * (xr % 50.0) / 50.0))[None, :, None]
    return tex


def render_foreign(rng: np.random.Generator, index: int) -> ForeignPhoto:
    """One foreign photo drawn from ``rng`` (see the module doc)."""
    u = rng.random()
    damage = None
    size = 0.0
    severity = "minor"
    if u >= 0.4:
        damage = str(rng.choice(["crushed_corner", "dent", "open_flap", "tear"]))
        severity = "minor" if u < 0.7 else "major"
        ranges = {
            "crushed_corner": ((50, 85), (100, 160)),
            "dent": ((20, 32), (40, 70)),
            "open_flap": ((30, 45), (60, 110)),
            "tear": ((20, 32), (45, 90)),
        }[damage]
        size = float(rng.uniform(*ranges[severity == "major"]))
    grade = "A" if damage is None else ("B" if severity == "minor" else "C")
    hostile = str(rng.choice(HOSTILE)) if rng.random() < 0.33 else None
    height_mm = float(rng.uniform(1300, 2200))
    mmpp = float(rng.uniform(0.95, 1.25))
    f_px = height_mm / mmpp
    tilt = (
        float(rng.uniform(12, 22)) * (1 if rng.random() < 0.5 else -1) if hostile == "tilt" else 0.0
    )
    cam = _Camera(height_mm, f_px, tilt, (0.0, 0.0))
    kraft = [(95, 140, 180), (110, 160, 200), (80, 120, 160), (150, 175, 200), (210, 215, 220)]
    base = kraft[int(rng.integers(len(kraft)))]
    spec: dict[str, Any] = {
        "length": float(rng.uniform(260, 460)),
        "width": float(rng.uniform(160, 300)),
        "height": float(rng.uniform(60, 320)),
        "yaw": float(rng.uniform(-20, 20)),
        "damage": damage,
        "size": size,
        "aspect": float(rng.uniform(0.7, 1.4)),
        "dent_half": float(rng.uniform(35, 70)),
        "print": rng.random() < 0.6,
        "logo": rng.random() < 0.4,
        "tape": str(rng.choice(["brown", "clear", "none"])),
        "label": rng.random() < 0.85,
        "rma": f"RMA-{900000 + index:06d}",
    }
    spec["dent_x"] = float(rng.uniform(-spec["length"] / 4, spec["length"] / 4))
    belt_kind = str(rng.choice(["rubber", "modular", "rollers", "pvc"]))
    # Box placement: anywhere it fits, off the camera's axis too (parallax).
    for _ in range(40):
        pos = (float(rng.uniform(-130, 130)), float(rng.uniform(-70, 70)))
        corners = _box_corners(spec, pos)
        px = cam.project(corners) / SS
        margin = 12
        inside = (
            px.min() >= margin
            and px[:, 0].max() < SIZE[0] - margin
            and px[:, 1].max() < SIZE[1] - margin
        )
        if inside:
            break
    if hostile == "partial":
        pos = (pos[0] + (1 if pos[0] >= 0 else -1) * float(rng.uniform(140, 220)), pos[1])
    light_az = float(rng.uniform(0, 2 * math.pi))
    light_el = math.radians(float(rng.uniform(50, 80)))
    light = np.array(
        [
            math.cos(light_az) * math.cos(light_el),
            math.sin(light_az) * math.cos(light_el),
            math.sin(light_el),
        ]
    )
    exposure = float(rng.uniform(0.85, 1.15)) * (0.3 if hostile == "dark" else 1.0)
    phase = float(rng.uniform(0, 100))
    tex_seed = int(rng.integers(2**31))
    image = _render(
        spec,
        pos,
        cam,
        belt_kind,
        phase,
        light,
        exposure,
        hostile,
        tex_seed,
        base,
        np.random.default_rng(tex_seed + 1),
    )
    empty = _render(
        None,
        pos,
        cam,
        belt_kind,
        phase + float(rng.uniform(5, 60)),
        light,
        exposure,
        None,
        tex_seed,
        base,
        np.random.default_rng(tex_seed + 2),
    )
    scale = mmpp * (0.6 if hostile == "scale" else 1.0)  # the camera moved since calibrating
    background = (
        BackgroundModel([empty]) if (belt_kind == "rollers" or rng.random() < 0.5) else None
    )
    return ForeignPhoto(image, grade, damage, hostile, Calibration(scale), background)


def _box_corners(spec: dict[str, Any], pos: tuple[float, float]) -> Any:
    hl, hw, h = spec["length"] / 2, spec["width"] / 2, spec["height"]
    pts = []
    a = math.radians(spec["yaw"])
    for x, y in ((-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)):
        X = pos[0] + x * math.cos(a) - y * math.sin(a)
        Y = pos[1] + x * math.sin(a) + y * math.cos(a)
        pts += [(X, Y, 0.0), (X, Y, h)]
    return np.array(pts)


def _render(
    spec: dict[str, Any] | None,
    pos: tuple[float, float],
    cam: _Camera,
    belt_kind: str,
    phase: float,
    light: Any,
    exposure: float,
    hostile: str | None,
    tex_seed: int,
    base: Any,
    noise_rng: np.random.Generator,
) -> Any:
    rng = np.random.default_rng(tex_seed)
    w, h = SIZE[0] * SS, SIZE[1] * SS
    img: Any = np.zeros((h, w, 3), np.float32)
    extent = 640.0
    belt = _belt_texture(rng, belt_kind, phase, extent)
    n = belt.shape[0]
    plane = [(-extent, -extent, 0), (extent, -extent, 0), (extent, extent, 0), (-extent, extent, 0)]
    img = _warp(img, belt, [(0, 0), (n, 0), (n, n), (0, n)], cam.project(plane))
    box_rng = np.random.default_rng(tex_seed + 7)
    if spec is not None:
        a = math.radians(spec["yaw"])
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        foot = np.asarray(_footprint(spec)) @ rot.T + np.array(pos)
        hgt = spec["height"]
        # shadow: the box's corners projected along the light onto the belt
        shift = -light[:2] / light[2] * hgt
        shadow = np.vstack([foot, foot + shift])
        hull = cv2.convexHull(
            np.asarray(cam.project(np.column_stack([shadow, np.zeros(len(shadow))])), np.float32)
        ).reshape(-1, 2)
        sm: Any = np.zeros((h, w), np.uint8)
        cv2.fillPoly(sm, [np.round(hull).astype(np.int32)], 255, cv2.LINE_AA)
        sm = cv2.GaussianBlur(sm.astype(np.float32) / 255, (0, 0), 6.0)
        img *= (1 - float(box_rng.uniform(0.3, 0.55)) * sm)[:, :, None]
        ambient = 0.45
        top_shade = ambient + 0.55 * light[2]
        eye = cam.c
        if spec["damage"] == "open_flap":  # a flap hinged at the top edge, standing out
            hl, hw = spec["length"] / 2, spec["width"] / 2
            out, lift = spec["size"], math.radians(float(box_rng.uniform(15, 50)))
            length = out / math.cos(lift)
            x0, x1 = -hl * 0.8, hl * 0.8
            loc = [
                (x0, hw, hgt),
                (x1, hw, hgt),
                (x1, hw + out, hgt + length * math.sin(lift)),
                (x0, hw + out, hgt + length * math.sin(lift)),
            ]
            pts3 = np.array([[*(np.array(p[:2]) @ rot.T + pos), p[2]] for p in loc])
            flap_tex = _kraft(box_rng, (40, 200), np.asarray(base, np.float32) * 0.85 * top_shade)
            img = _warp(img, flap_tex, [(0, 0), (200, 0), (200, 40), (0, 40)], cam.project(pts3))
        k = len(foot)
        faces = []
        for i in range(k):
            p0, p1 = foot[i], foot[(i + 1) % k]
            quad = np.array([[*p0, 0], [*p1, 0], [*p1, hgt], [*p0, hgt]])
            edge = p1 - p0
            normal = np.array([edge[1], -edge[0], 0.0])
            normal /= max(float(np.linalg.norm(normal)), 1e-9)
            centre = quad.mean(axis=0)
            if float(normal @ (eye - centre)) <= 0:
                continue  # faces away from the camera
            shade = ambient + 0.55 * max(0.0, float(normal @ light))
            faces.append(
                (float(np.linalg.norm(eye - centre)), quad, shade, float(np.linalg.norm(edge)))
            )
        for _, quad, shade, length in sorted(faces, key=lambda f: -f[0]):
            tw = max(8, int(length))
            side = _kraft(box_rng, (max(8, int(hgt)), tw), np.asarray(base, np.float32) * shade)
            th_, tw_ = side.shape[:2]
            img = _warp(img, side, [(0, th_), (tw_, th_), (tw_, 0), (0, 0)], cam.project(quad))
        lmm, wmm = spec["length"], spec["width"]
        top_tex = _top_texture(box_rng, lmm, wmm, np.asarray(base, np.float32) * top_shade, spec)
        hl, hw = lmm / 2, wmm / 2
        rect = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]]) @ rot.T + np.array(pos)
        rect3 = np.column_stack([rect, np.full(4, hgt)])
        th_, tw_ = top_tex.shape[:2]
        top_poly = cam.project(np.column_stack([foot, np.full(k, hgt)]))
        # texture row 0 at the box's +y edge: the camera looks down, so print reads right
        src = [(0, th_), (tw_, th_), (tw_, 0), (0, 0)]
        img = _warp(img, top_tex, src, cam.project(rect3), top_poly)
        if spec["label"]:
            lab = _label(box_rng, spec["rma"]) * top_shade
            lw_mm, lh_mm = lab.shape[1] / 2.0, lab.shape[0] / 2.0  # 0.5 mm per px
            if lw_mm < lmm - 20 and lh_mm < wmm - 20:
                x0 = float(box_rng.uniform(-hl + 10, hl - 10 - lw_mm))
                y0 = float(box_rng.uniform(-hw + 10, hw - 10 - lh_mm))
                quad = np.array(
                    [[x0, y0 + lh_mm], [x0 + lw_mm, y0 + lh_mm], [x0 + lw_mm, y0], [x0, y0]]
                )
                quad = quad @ rot.T + np.array(pos)
                lq = cam.project(np.column_stack([quad, np.full(4, hgt)]))
                lh_, lw_ = lab.shape[:2]
                img = _warp(img, lab, [(0, 0), (lw_, 0), (lw_, lh_), (0, lh_)], lq, top_poly)
        if spec["damage"] == "tear":  # through the board and whatever is stuck on it
            colour, cover = _tear_layer(
                box_rng, (th_, tw_), np.asarray(base, np.float32) * top_shade, spec["size"]
            )
            ys, xs = np.nonzero(cover > 0)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            layer = np.dstack([colour[y0:y1, x0:x1], cover[y0:y1, x0:x1, None]]).astype(np.float32)
            corners = np.array([[x0, y1], [x1, y1], [x1, y0], [x0, y0]], np.float64)
            # texture px -> box frame mm: (x - hl, hw - y) (rows run from +y, see src)
            local = np.column_stack([corners[:, 0] - hl, hw - corners[:, 1]])
            world = local @ rot.T + np.array(pos)
            dst = cam.project(np.column_stack([world, np.full(4, hgt)]))
            img = _warp_alpha(
                img, layer, [(0, y1 - y0), (x1 - x0, y1 - y0), (x1 - x0, 0), (0, 0)], dst, top_poly
            )
        if hostile == "glare":
            g = np.zeros((h, w), np.float32)
            c = cam.project([[pos[0], pos[1], hgt]])[0]
            cv2.ellipse(
                g,
                (int(c[0]), int(c[1])),
                (int(box_rng.uniform(80, 140)), int(box_rng.uniform(40, 80))),
                float(box_rng.uniform(0, 180)),
                0,
                360,
                1.0,
                -1,
            )
            img += cv2.GaussianBlur(g, (0, 0), 14.0)[:, :, None] * 420.0
        if hostile == "clutter":
            c = (float(box_rng.uniform(0.08, 0.2)) * w, float(box_rng.uniform(0.75, 0.9)) * h)
            cv2.ellipse(
                img,
                (int(c[0]), int(c[1])),
                (int(70 * SS / 1.0), int(40 * SS / 1.0)),
                30.0,
                0,
                360,
                (50, 60, 150),
                -1,
                cv2.LINE_AA,
            )
    # vignetting, exposure, tint
    xx = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2)) ** 2
    yy = ((np.arange(h, dtype=np.float32) - h / 2) / (w / 2)) ** 2
    img *= (exposure * (1.0 - 0.18 * (yy[:, None] + xx[None, :])))[:, :, None]
    img *= np.array(
        [1.0 + 0.04 * math.sin(tex_seed), 1.0, 1.0 + 0.04 * math.cos(tex_seed)], np.float32
    )
    img = cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
    if hostile == "motion":
        n_px = int(noise_rng.integers(10, 22))
        img = cv2.filter2D(img, -1, np.full((1, n_px), 1.0 / n_px, np.float32))
    img = np.clip(img, 0, 255)
    shot = noise_rng.normal(0, 1, img.shape).astype(np.float32) * np.sqrt(img * 0.35 + 4.0)
    out = np.clip(img + shot, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(noise_rng.integers(72, 94))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def foreign_set(
    count: int, seed: int = SEED
) -> Iterator[tuple[Any, str, tuple[Calibration, BackgroundModel | None]]]:
    """``count`` foreign photos as (image, true grade, (calibration, background))."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        p = render_foreign(rng, i)
        yield p.image, p.grade, (p.calibration, p.background)


MANIFEST = "manifest.csv"


def write_fixture(folder: Path, count: int, seed: int = SEED) -> Path:
    """Render ``count`` foreign photos into ``folder``.

    ``NNN.jpg`` (quality 92), the empty belt as ``NNN-belt.jpg`` when one was captured, and
    ``manifest.csv`` (file, grade, damage, hostile, mm_per_px, belt).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = [["file", "grade", "damage", "hostile", "mm_per_px", "belt"]]
    for i in range(count):
        p = render_foreign(rng, i)
        name = f"{i:03d}.jpg"
        cv2.imwrite(str(folder / name), p.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        belt = ""
        if p.background is not None:
            belt = f"{i:03d}-belt.jpg"
            empty = np.clip(p.background.median, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / belt), empty, [cv2.IMWRITE_JPEG_QUALITY, 92])
        rows.append(
            [name, p.grade, p.damage or "", p.hostile or "", f"{p.calibration.mm_per_px:.5f}", belt]
        )
    with (folder / MANIFEST).open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return folder


def load_fixture(
    folder: Path,
) -> Iterator[tuple[Any, str, tuple[Calibration, BackgroundModel | None], dict[str, str]]]:
    """(image, true grade, (calibration, background), manifest row) of a written fixture.

    Raises:
        ValueError: a listed photo that cannot be read.
    """
    folder = Path(folder)
    with (folder / MANIFEST).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        image = cv2.imread(str(folder / row["file"]))
        if image is None:
            raise ValueError(f"{folder / row['file']}: cannot read the image")
        bg = None
        if row["belt"]:
            empty = cv2.imread(str(folder / row["belt"]))
            if empty is None:
                raise ValueError(f"{folder / row['belt']}: cannot read the image")
            bg = BackgroundModel([empty])
        yield image, row["grade"], (Calibration(float(row["mm_per_px"])), bg), row
