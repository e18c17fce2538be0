"""Photo evidence on the station: JPEG encoding with its SHA-256, storage and retention.

Photos are files ``<dir>/<sha256>.jpg``; :meth:`PhotoStore.purge` deletes those older than
``retention_days`` (by file modification time, UTC days of 86 400 s).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2

__all__ = ["PhotoFile", "PhotoStore", "encode_jpeg"]

log = logging.getLogger(__name__)
DAY_S = 86_400.0


@dataclass(frozen=True)
class PhotoFile:
    """A stored JPEG: its hash (hex), capture time (UTC), size (bytes) and path."""

    sha256: str
    taken_at: datetime
    size: int
    path: Path
    content_type: str = "image/jpeg"


def encode_jpeg(frame: Any, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR frame (``cv2.imencode``, quality 0..100).

    Raises:
        ValueError: the frame cannot be encoded.
    """
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("frame cannot be encoded as JPEG")
    return bytes(buf.tobytes())


class PhotoStore:
    """A folder of parcel photos with a retention period.

    Args:
        folder: where photos go (created).
        retention_days: photos older than this are deleted by :meth:`purge`.
        quality: JPEG quality.
    """

    def __init__(self, folder: Path, retention_days: float = 30.0, quality: int = 85) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self.quality = quality
        self.counters = {"stored": 0, "purged": 0}

    def save(self, frame: Any, taken_at: datetime) -> tuple[PhotoFile, bytes]:
        """Encode and store ``frame``; returns the file record and the JPEG bytes."""
        jpeg = encode_jpeg(frame, self.quality)
        digest = hashlib.sha256(jpeg).hexdigest()
        path = self.folder / f"{digest}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(jpeg)
            tmp.replace(path)
        self.counters["stored"] += 1
        return PhotoFile(digest, taken_at, len(jpeg), path), jpeg

    def purge(self, now_s: float | None = None) -> int:
        """Delete photos older than the retention period; returns how many went.

        Args:
            now_s: the present as a Unix time, s (default: the system clock).
        """
        cutoff = (time.time() if now_s is None else now_s) - self.retention_days * DAY_S
        gone = 0
        for path in self.folder.glob("*.jpg"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        if gone:
            log.info("purged %d photo(s) older than %s days", gone, self.retention_days)
        self.counters["purged"] += gone
        return gone
