"""Pixels to belt millimetres, from a printed ArUco grid board lying on the belt.

The camera looks straight down on the belt; the belt plane is mapped to the image by a
homography (OpenCV ``cv2.findHomography`` over the detected marker corners, whose belt
positions in mm the board layout gives; method: OpenCV's ArUco module, ``cv2.aruco``).
A parcel's top lies above the belt plane, so its footprint reads slightly large (by
``height / camera height``); the calibration is for the belt plane.

Command::

    python -m edge.vision.calibration board IMAGE.png        # print a board to calibrate with
    python -m edge.vision.calibration calibrate PHOTO.jpg --out calibration.json \\
        --markers 4x3 --marker-mm 40 --separation-mm 10
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["Calibration", "calibrate_aruco", "main"]

DICTIONARY = cv2.aruco.DICT_4X4_50


@dataclass(frozen=True)
class Calibration:
    """Image px to belt mm.

    Attributes:
        mm_per_px: mean scale on the belt plane, mm per px.
        homography: 3x3 image px -> belt mm (row-major), or None: a plain scale.
        method: how it was obtained (``aruco``, ``manual``).
        markers: markers used (0 for ``manual``).
        rms_mm: RMS residual of the marker corners after the fit, mm.
        nadir_px: the image point straight below the camera (where a box's vertical
            edges converge), px; None: the image centre (a camera looking straight down).
    """

    mm_per_px: float
    homography: tuple[float, ...] | None = None
    method: str = "manual"
    markers: int = 0
    rms_mm: float = 0.0
    nadir_px: tuple[float, float] | None = None

    def to_mm(self, points_px: Any) -> Any:
        """Belt positions (N x 2, mm) of image points (N x 2, px)."""
        pts = np.asarray(points_px, np.float64).reshape(-1, 2)
        if self.homography is None:
            return pts * self.mm_per_px
        h = np.asarray(self.homography, np.float64).reshape(3, 3)
        return cv2.perspectiveTransform(pts.reshape(-1, 1, 2), h).reshape(-1, 2)

    def to_px(self, points_mm: Any) -> Any:
        """Image points (N x 2, px) of belt positions (N x 2, mm): the inverse of :meth:`to_mm`."""
        pts = np.asarray(points_mm, np.float64).reshape(-1, 2)
        if self.homography is None:
            return pts / self.mm_per_px
        h = np.linalg.inv(np.asarray(self.homography, np.float64).reshape(3, 3))
        return cv2.perspectiveTransform(pts.reshape(-1, 1, 2), h).reshape(-1, 2)

    def nadir_mm(self, size: tuple[int, int]) -> Any:
        """The belt point below the camera (2, mm) for an image of ``size`` (w, h) px."""
        w, h = size
        px = self.nadir_px if self.nadir_px is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
        return self.to_mm([px])[0]

    def area_mm2(self, area_px: float) -> float:
        """An image area (px^2) as belt area (mm^2), at the mean scale."""
        return area_px * self.mm_per_px**2

    def save(self, path: Path) -> None:
        """Write as JSON."""
        Path(path).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a JSON file written by :meth:`save`.

        Raises:
            ValueError: not a calibration file.
        """
        data = json.loads(Path(path).read_text())
        try:
            h = data.get("homography")
            nadir = data.get("nadir_px")
            return cls(
                mm_per_px=float(data["mm_per_px"]),
                homography=None if h is None else tuple(float(v) for v in h),
                method=str(data.get("method", "manual")),
                markers=int(data.get("markers", 0)),
                rms_mm=float(data.get("rms_mm", 0.0)),
                nadir_px=None if nadir is None else (float(nadir[0]), float(nadir[1])),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"{path}: not a calibration file ({exc})") from exc


def _board(markers: tuple[int, int], marker_mm: float, separation_mm: float) -> Any:
    return cv2.aruco.GridBoard(
        markers, marker_mm, separation_mm, cv2.aruco.getPredefinedDictionary(DICTIONARY)
    )


def calibrate_aruco(
    image: Any,
    markers: tuple[int, int] = (4, 3),
    marker_mm: float = 40.0,
    separation_mm: float = 10.0,
) -> Calibration:
    """Calibrate from a photo of the ArUco grid board (``cv2.aruco.GridBoard``, 4x4_50).

    Args:
        image: BGR or grey photo of the board flat on the belt.
        markers: board columns x rows.
        marker_mm: printed marker side, mm.
        separation_mm: printed gap between markers, mm.

    Raises:
        ValueError: fewer than 2 markers of the board found.
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    board = _board(markers, marker_mm, separation_mm)
    detector = cv2.aruco.ArucoDetector(board.getDictionary(), cv2.aruco.DetectorParameters())
    corners, ids, _rejected = detector.detectMarkers(grey)
    if ids is None or len(ids) < 2:
        raise ValueError(f"board not found: {0 if ids is None else len(ids)} marker(s) detected")
    obj, img = board.matchImagePoints(corners, ids)
    obj_mm = np.asarray(obj, np.float64).reshape(-1, 3)[:, :2]
    img_px = np.asarray(img, np.float64).reshape(-1, 2)
    h, _ = cv2.findHomography(img_px, obj_mm, 0)
    fitted = cv2.perspectiveTransform(img_px.reshape(-1, 1, 2), h).reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((fitted - obj_mm) ** 2, axis=1))))
    # Mean scale at the board's centre: 100 px steps along x and y, mapped to mm.
    c = img_px.mean(axis=0)
    probe = np.array([c, c + np.array([100.0, 0.0]), c + np.array([0.0, 100.0])])
    probe = probe.reshape(-1, 1, 2)
    p = cv2.perspectiveTransform(probe, h).reshape(-1, 2)
    scale = (np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[0])) / 200.0
    return Calibration(
        mm_per_px=float(scale),
        homography=tuple(float(v) for v in h.reshape(-1)),
        method="aruco",
        markers=len(ids),
        rms_mm=round(rms, 3),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.vision.calibration {board,calibrate}``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m edge.vision.calibration")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("board", "calibrate"):
        p = sub.add_parser(name)
        p.add_argument("image", type=Path)
        p.add_argument("--markers", default="4x3", help="columns x rows")
        p.add_argument("--marker-mm", type=float, default=40.0)
        p.add_argument("--separation-mm", type=float, default=10.0)
        if name == "board":
            p.add_argument("--dpi", type=int, default=300)
        else:
            p.add_argument("--out", type=Path, default=Path("calibration.json"))
    args = parser.parse_args(argv)
    cols, rows = (int(v) for v in args.markers.lower().split("x"))
    if args.cmd == "board":
        px_per_mm = args.dpi / 25.4
        w = round((cols * args.marker_mm + (cols - 1) * args.separation_mm) * px_per_mm)
        h = round((rows * args.marker_mm + (rows - 1) * args.separation_mm) * px_per_mm)
        margin = round(args.separation_mm * px_per_mm)
        art = _board((cols, rows), args.marker_mm, args.separation_mm).generateImage(
            (w + 2 * margin, h + 2 * margin), marginSize=margin, borderBits=1
        )
        cv2.imwrite(str(args.image), art)
        print(f"board written to {args.image}: print at {args.dpi} dpi, 100 % scale")
        return 0
    image = cv2.imread(str(args.image))
    if image is None:
        print(f"cannot read {args.image}", file=sys.stderr)
        return 2
    try:
        cal = calibrate_aruco(image, (cols, rows), args.marker_mm, args.separation_mm)
    except ValueError as exc:
        print(f"calibration failed: {exc}", file=sys.stderr)
        return 1
    cal.save(args.out)
    print(
        f"{cal.markers} markers, {cal.mm_per_px:.4f} mm/px, residual {cal.rms_mm} mm RMS "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
