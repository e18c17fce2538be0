"""The camera at the station: one photo per inducted parcel, graded off the sort path, by id.

The core reports each parcel it inducts (:class:`~edge.sorter.model.Inducted`); the camera
is triggered for it at ``t_ms + camera.trigger_delay_ms`` (``t_ms``: the leading edge at
the photo-eye, the first raw edge of the debounced burst, the time the camera used to be
triggered from) with the parcel id as the photo's tag. The core accepts the edge
``debounce_ms`` after the burst's last raw edge, so a ``trigger_delay_ms`` shorter than
that is served that much late; a trigger never comes twice for one parcel, so no hold-off
against bounce is needed. The photo goes to the grader thread (:mod:`edge.vision.worker`);
its result comes back to the reactor, which hands it to :meth:`CameraStation.graded`:

* the JPEG is uploaded to the gateway (``vision.upload``);
* with ``belt.camera_pos_mm`` set (the core waits for the camera), the grade and the label
  barcodes decoded from the photo and the parcel's footprint (checked against the
  catalogue dimensions of what it claims) go to the core for that parcel id
  (``on_grade``, ``on_barcode(source="camera")``, ``on_footprint``); an invalid photo
  (field case C9) gives the policy's ``grade_without_photo`` (None: ``unknown``).
  Without it the photo is evidence only;
* the result is kept by parcel id until the parcel's event takes it (:meth:`take`).
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from edge.config import StationConfig
from edge.drivers.camera import Camera, Photo
from edge.sorter import SorterCore
from edge.sorter.grading import GradingThresholds
from edge.sorter.model import Action
from edge.station.devices import DeviceBank
from protocol import PhotoUpload, encode

if TYPE_CHECKING:
    from edge.vision.worker import GradedPhoto, PhotoGrader

__all__ = ["GRADED_KEPT", "PHOTOS_KEPT", "CameraStation", "camera_station", "make_grader"]

log = logging.getLogger(__name__)

GRADED_KEPT = 200
"""Graded photos kept for parcels still on the belt (oldest dropped first)."""

PHOTOS_KEPT = 50
"""Recent photos kept for status and tests."""


def make_grader(
    config: StationConfig,
    thresholds: Callable[[], GradingThresholds],
    to_utc: Callable[[float], datetime],
) -> PhotoGrader:
    """The photo grader of ``[vision]`` (:func:`edge.vision.worker.grader_from_config`).

    Imports OpenCV: only a station with a camera builds one.

    Raises:
        OSError: a background photo cannot be read.
        ValueError: a bad calibration file or model.
        ImportError: OpenCV, zxing-cpp or the configured backend is not installed.
    """
    from edge.vision.worker import grader_from_config

    return grader_from_config(config.vision, config.station.data_dir, thresholds, to_utc)


def camera_station(
    config: StationConfig,
    core: SorterCore,
    devices: DeviceBank,
    to_utc: Callable[[float], datetime],
    publish_photo: Callable[[bytes], object],
    clock: Callable[[], float],
) -> CameraStation:
    """The station's camera glue: its camera when usable, its grader (health ``grader``)."""
    grader = None
    if config.camera is not None and devices.camera is not None:
        grader = devices.try_build(
            "grader", "opencv", lambda: make_grader(config, lambda: core.policy.grading, to_utc)
        )
    camera = devices.camera if devices.usable("camera") else None
    return CameraStation(config, core, camera, grader, publish_photo, clock)


class CameraStation:
    """Camera triggers, photos to the grader, grades back to the core, evidence for events.

    Args:
        config: the station config (``[camera]``, ``[vision]``, ``belt.camera_pos_mm``).
        core: the sorter core (called on the reactor thread only).
        camera: the camera when it passed its self-test, else None (no photos).
        grader: the photo grader, or None (photos are neither stored nor graded).
        publish_photo: sends an encoded :class:`protocol.PhotoUpload` to the gateway.
        clock: the station's monotonic ms clock.
    """

    def __init__(
        self,
        config: StationConfig,
        core: SorterCore,
        camera: Camera | None,
        grader: PhotoGrader | None,
        publish_photo: Callable[[bytes], object],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.core = core
        self.camera = camera
        self.grader = grader
        self.publish_photo = publish_photo
        self.clock = clock
        self.photos: deque[Photo] = deque(maxlen=PHOTOS_KEPT)
        self._graded: OrderedDict[int, GradedPhoto] = OrderedDict()

    def start(
        self, on_photo: Callable[[Photo], None], on_graded: Callable[[GradedPhoto], None]
    ) -> None:
        """Start the grader and the camera; their results go to the callbacks (their threads)."""
        if self.grader is not None:
            self.grader.start(on_graded)
        if self.camera is not None:
            self.camera.start(on_photo)

    def stop(self) -> None:
        """Stop the grader (the camera is the device bank's to stop)."""
        if self.grader is not None:
            self.grader.stop()

    def status(self) -> dict[str, object] | None:
        """The grader's status, or None without one."""
        return self.grader.status() if self.grader is not None else None

    # -- reactor thread -----------------------------------------------------------------------
    def inducted(self, parcel_id: int, t_ms: float) -> None:
        """Parcel ``parcel_id``'s leading edge reached the photo-eye at ``t_ms``: photograph it."""
        cam = self.config.camera
        if self.camera is not None and cam is not None:
            self.camera.trigger(t_ms + cam.trigger_delay_ms, tag=parcel_id)

    def photo(self, photo: Photo) -> None:
        """A photo (valid, or invalid with its reason) from the camera: to the grader.

        An invalid photo is never graded (field case C9): the grader reports it without a
        grade and the policy's ``grade_without_photo`` applies.
        """
        self.photos.append(photo)
        if self.grader is not None:
            self.grader.submit(photo)

    def graded(self, result: GradedPhoto) -> list[Action]:
        """A graded photo from the grader: kept, uploaded, and fed to the core by parcel id.

        Returns the core's actions. A photo whose tag is not a parcel id (never the case
        for a trigger of :meth:`inducted`) is evidence for nobody and feeds nothing.
        """
        photo = result.photo
        parcel_id = photo.tag if isinstance(photo.tag, int) else None
        if parcel_id is not None:
            self._graded[parcel_id] = result
            while len(self._graded) > GRADED_KEPT:
                self._graded.popitem(last=False)
        if result.file is not None and result.jpeg is not None and self.config.vision.upload:
            upload = PhotoUpload(
                station=self.config.station.id,
                sha256=result.file.sha256,
                taken_at=result.file.taken_at,
                jpeg_b64=base64.b64encode(result.jpeg).decode("ascii"),
            )
            self.publish_photo(encode(upload))
        if self.config.belt.camera_pos_mm is None or parcel_id is None:
            return self.core.advance(self.clock())
        return self._feed(result, parcel_id)

    def _feed(self, result: GradedPhoto, parcel_id: int) -> list[Action]:
        """The photo's label reads (a second barcode reader) and grade, for ``parcel_id``.

        After the parcel's decision they are orphans: the decision never waits for the
        grader beyond the camera's zone.
        """
        t_ms = result.photo.t_trigger_ms
        seen = result.photo.t_frame_ms  # when the frame was captured: the core checks it
        core = self.core
        actions: list[Action] = []
        if result.grading is not None:
            grade, confidence = result.grading.grade, result.grading.confidence
            m = result.grading.measures
            for code in m.barcodes:
                actions += core.on_barcode(
                    t_ms, code, parcel_id=parcel_id, source="camera", seen_ms=seen
                )
            if m.found and m.length_mm > 0 and m.width_mm > 0:
                actions += core.on_footprint(t_ms, m.length_mm, m.width_mm, parcel_id, seen_ms=seen)
        else:
            grade, confidence = core.policy.grade_without_photo or "unknown", 1.0
        return actions + core.on_grade(t_ms, grade, confidence, parcel_id=parcel_id, seen_ms=seen)

    def take(self, parcel_id: int) -> GradedPhoto | None:
        """The graded photo of ``parcel_id`` for its event (removed), or None."""
        return self._graded.pop(parcel_id, None)
