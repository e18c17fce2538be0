"""Making the grader work on a site's own line: capture, collect, label, tune, report.

The procedure (``hardware/INSTALL.md``, "Grading camera: tune it on your line"):

1. ``capture-belt``: photograph the empty, running belt through the real camera (the
   OpenCV driver, fresh frames only) and keep the frames; ``[vision] background`` names
   the folder, the grader uses their per-pixel median.
2. ``collect``: copy the photos the station took (``<data_dir>/photos``, named by their
   SHA-256) into a folder with a ``labels.csv`` whose ``grade`` column a person fills in
   (A, B or C; leave it empty for a photo nobody can judge); ``suggested`` and ``why``
   say what the station's grader made of it.
3. ``tune``: measure every labelled photo once, set a held-out part aside (30 % per grade,
   chosen by file-name hash, so more photos later keep the old split), search the
   thresholds and fit the confidence curves on the rest, and print the confusion matrix of
   the held-out part with the current and with the tuned policy. The tuned policy is
   written as ``DispositionPolicy`` JSON (a new version) for ``PUT /api/v1/policy``; the
   exit status is 1, and the report says not to push it, when on the held-out part an
   intact parcel was graded C or a damaged one A.
4. ``python -m simulator.vision.evaluate --photos DIR --policy tuned.json`` (or this
   module's ``report``) reports any labelled folder against a policy.

Commands::

    python -m edge.vision.site capture-belt --device /dev/video0 --count 30 --out belt/
    python -m edge.vision.site collect --station-photos /var/lib/returns/photos --out label-me/
    python -m edge.vision.site tune --photos label-me/ --calibration calibration.json \\
        --background belt/ --policy current-policy.json --out tuned-policy.json
    python -m edge.vision.site report --photos label-me/ --policy tuned-policy.json
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2

from edge.sorter.grading import GradingThresholds
from edge.sorter.policy import Policy, default_policy, policy_from_mapping, policy_to_mapping
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, grade_frame, measure
from edge.vision.tuning import (
    Confusion,
    Labelled,
    evaluate_measured,
    fit_calibration,
    labelled_files,
    read_photo,
    split,
    tune_thresholds,
)
from edge.vision.worker import load_background

__all__ = ["capture_belt", "collect", "main", "tune"]


def capture_belt(camera: Any, count: int, out: Path, interval_s: float = 0.2) -> list[Path]:
    """Capture ``count`` valid frames of the empty belt into ``out`` (``belt-NNN.png``).

    ``camera``: an :class:`edge.drivers.camera.Camera` (fresh frames only: invalid ones,
    black or frozen, are skipped and retried up to ``3 x count`` times).

    Raises:
        OSError: fewer than ``count`` valid frames.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for attempt in range(3 * count):
        if len(written) >= count:
            break
        photo = camera.capture(float(attempt))
        if photo.ok and photo.frame is not None:
            path = out / f"belt-{len(written):03d}.png"
            cv2.imwrite(str(path), photo.frame)
            written.append(path)
        time.sleep(interval_s)
    if len(written) < count:
        raise OSError(f"only {len(written)} of {count} valid empty-belt frames")
    return written


def collect(
    station_photos: Path,
    out: Path,
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    limit: int = 500,
) -> Path:
    """Copy station photos into ``out`` with a ``labels.csv`` to fill in (see module doc).

    Photos already in ``out/labels.csv`` keep their row (and grade). Returns the CSV path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = out / "labels.csv"
    rows: dict[str, list[str]] = {}
    if labels.exists():
        with labels.open(newline="") as fh:
            for row in csv.reader(fh):
                if row and row[0] != "file":
                    rows[row[0]] = row
    photos = sorted(Path(station_photos).glob("*.jpg"), key=lambda p: p.stat().st_mtime)
    for src in photos[-limit:]:
        if src.name in rows:
            continue
        image = cv2.imread(str(src))
        if image is None:
            continue
        shutil.copy2(src, out / src.name)
        g = grade_frame(image, calibration, thresholds, background, early_exit=False)
        rows[src.name] = [src.name, "", g.measured_grade or g.grade, g.explanation[:200]]
    with labels.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "grade", "suggested", "why"])
        w.writerows(rows.values())
    return labels


def _measure_folder(
    folder: Path, calibration: Calibration, thresholds: GradingThresholds, bg: Any
) -> list[Labelled]:
    return [
        Labelled(path.name, grade, measure(read_photo(path), calibration, thresholds, bg))
        for path, grade in labelled_files(folder)
    ]


def tune(
    folder: Path,
    calibration: Calibration,
    policy: Policy,
    background: BackgroundModel | None = None,
    held_out: float = 0.3,
) -> tuple[Policy, Confusion, Confusion, int]:
    """Tune ``policy``'s grading on the labelled photos of ``folder``.

    Returns (tuned policy, held-out confusion with the current policy, with the tuned one,
    photos used). The tuned policy's version is the current one's + ``-tuned``.

    Raises:
        ValueError: no labelled photo of some grade in the tuning part, or unreadable files.
    """
    items = _measure_folder(folder, calibration, policy.grading, background)
    tune_part, test_part = split(items, held_out)
    missing = sorted({"A", "B", "C"} - {x.grade for x in tune_part})
    if missing:
        raise ValueError(f"no labelled photo of grade(s) {missing} to tune on")
    thresholds = tune_thresholds(tune_part, policy.grading)
    thresholds = replace(thresholds, calibration=fit_calibration(tune_part, thresholds))
    tuned = replace(policy, version=f"{policy.version}-tuned"[:64], grading=thresholds)
    before = evaluate_measured(test_part, policy.grading)
    after = evaluate_measured(test_part, thresholds)
    return tuned, before, after, len(items)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", type=Path, help="calibration JSON (default 1 mm/px)")
    p.add_argument("--background", type=Path, help="empty-belt photo or folder")
    p.add_argument("--policy", type=Path, help="current policy JSON (default: shipped)")


def _load(args: argparse.Namespace) -> tuple[Calibration, Policy, BackgroundModel | None]:
    cal = Calibration.load(args.calibration) if args.calibration else Calibration(1.0)
    pol = default_policy()
    if args.policy is not None:
        pol = policy_from_mapping(json.loads(Path(args.policy).read_text()))
    bg = load_background(args.background) if args.background else None
    return cal, pol, bg


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.vision.site {capture-belt,collect,tune,report}``; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m edge.vision.site", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("capture-belt", help="photograph the empty belt")
    p.add_argument("--device", required=True, help="camera device, index or video file")
    p.add_argument("--api", default="v4l2")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--interval-s", type=float, default=0.2)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("collect", help="station photos into a folder to label")
    p.add_argument("--station-photos", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=500)
    _common(p)
    for name in ("tune", "report"):
        p = sub.add_parser(name)
        p.add_argument("--photos", type=Path, required=True, help="labelled folder")
        _common(p)
        if name == "tune":
            p.add_argument("--held-out", type=float, default=0.3)
            p.add_argument("--out", type=Path, required=True, help="tuned policy JSON")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "capture-belt":
            from edge.drivers.opencv_camera import OpencvCamera

            cam = OpencvCamera(args.device, api=args.api, flush_frames=1)
            try:
                files = capture_belt(cam, args.count, args.out, args.interval_s)
            finally:
                cam.stop()
            print(
                f'{len(files)} empty-belt frames in {args.out}: [vision] background = "{args.out}"'
            )
            return 0
        cal, pol, bg = _load(args)
        if args.cmd == "collect":
            labels = collect(args.station_photos, args.out, cal, pol.grading, bg, args.limit)
            print(f"fill in the grade column of {labels} (A, B or C; empty: cannot tell)")
            return 0
        if args.cmd == "report":
            items = _measure_folder(args.photos, cal, pol.grading, bg)
            print(
                f"{args.photos} with policy {pol.version}:\n"
                f"{evaluate_measured(items, pol.grading).table()}"
            )
            return 0
        tuned, before, after, n = tune(args.photos, cal, pol, bg, args.held_out)
    except (OSError, ValueError) as exc:
        print(f"{args.cmd} failed: {exc}", file=sys.stderr)
        return 2
    print(f"{n} labelled photos; held-out part ({before.total}):")
    print(f"with the current policy {pol.version}:\n{before.table()}\n")
    print(f"with the tuned policy {tuned.version}:\n{after.table()}\n")
    Path(args.out).write_text(json.dumps(policy_to_mapping(tuned), indent=2) + "\n")
    if after.safety():
        print(
            f"NOT SAFE: do not push {args.out}: on the held-out part an intact parcel was "
            "graded C or a damaged one A; label more photos and tune again"
        )
        return 1
    print(f"written {args.out}: push it with PUT /api/v1/policy (hardware/INSTALL.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
