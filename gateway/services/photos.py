"""Parcel photos at the gateway: JPEGs stored once by their SHA-256, with retention.

Stations send each photo (``PhotoUpload`` on ``rs/v1/{site}/{station}/photo``) before the
parcel event naming it; the JPEG is checked against its hash and kept as
``<photo_dir>/<sha256[:2]>/<sha256>.jpg``. ``GET /api/v1/photos/{sha256}`` serves it.
:meth:`PhotoStore.purge` deletes photos older than ``photo_retention_days`` (file time).
A photo no event has named yet is an *orphan*: each station may have at most its quota of
them (count and bytes; its oldest is deleted past it), and an orphan is deleted after the
quota's retention (:meth:`PhotoStore.purge_orphans`). Orphans are tracked in memory: after
a restart the photos already stored count as named (they keep the normal retention).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from gateway.services.quotas import DROPPED, Quota, StationQuotas
from protocol import PhotoUpload, ProtocolError

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
JPEG_MAGIC = b"\xff\xd8\xff"
DAY_S = 86_400.0
PURGE_EVERY_S = 3600.0


def is_photo_hash(value: str) -> bool:
    """True when ``value`` is a photo's SHA-256 as stored (64 lower-case hex digits)."""
    return SHA256_RE.match(value) is not None


def photo_url(sha256: str) -> str:
    """The API path of a photo."""
    return f"/api/v1/photos/{sha256}"


class PhotoStore:
    """A folder of photos named by hash.

    Args:
        folder: the photo folder (created).
        retention_days: photos older than this are deleted (None: kept for ever).
        orphans: the per-station quota of photos no event has named yet.
        leader: asked before a purge; the purge is skipped unless it returns True (one
            replica purges a shared photo folder); None: always purge.
    """

    def __init__(
        self,
        folder: Path,
        retention_days: float | None = 365.0,
        orphans: Quota = StationQuotas.orphan_photos,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._leader = leader
        self.folder.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self.orphans = orphans
        self._orphans: dict[str, OrderedDict[str, tuple[int, float]]] = {}
        self._lock = threading.Lock()
        self._last_purge = float("-inf")

    def path(self, sha256: str) -> Path | None:
        """Where the photo ``sha256`` is, or None when it is not stored (or not a hash)."""
        if not SHA256_RE.match(sha256):
            return None
        path = self.folder / sha256[:2] / f"{sha256}.jpg"
        return path if path.is_file() else None

    def store(self, upload: PhotoUpload) -> bool:
        """Store an uploaded photo once; True when it was new.

        Raises:
            ProtocolError: the data is not base64, not a JPEG, or does not match its hash.
        """
        try:
            jpeg = base64.b64decode(upload.jpeg_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"photo {upload.sha256}: not base64") from exc
        if not jpeg.startswith(JPEG_MAGIC):
            raise ProtocolError(f"photo {upload.sha256}: not a JPEG")
        if hashlib.sha256(jpeg).hexdigest() != upload.sha256:
            raise ProtocolError(f"photo {upload.sha256}: hash does not match its data")
        path = self.folder / upload.sha256[:2] / f"{upload.sha256}.jpg"
        with self._lock:
            if path.exists():
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(jpeg)
            tmp.replace(path)
            self._track_orphan(upload.station, upload.sha256, len(jpeg))
        self.maybe_purge()
        log.info(
            "photo stored sha256=%s station=%s bytes=%d", upload.sha256, upload.station, len(jpeg)
        )
        return True

    def orphan_count(self, station: str) -> int:
        """How many photos of ``station`` no event has named yet."""
        with self._lock:
            return len(self._orphans.get(station, ()))

    def claim(self, sha256: str) -> None:
        """An event named photo ``sha256``: it is no longer an orphan."""
        with self._lock:
            for pending in self._orphans.values():
                pending.pop(sha256, None)

    def _track_orphan(self, station: str, sha256: str, size: int) -> None:
        """Record a new orphan; drop the station's oldest past its quota (lock held)."""
        pending = self._orphans.setdefault(station, OrderedDict())
        pending[sha256] = (size, time.time())
        q = self.orphans
        while len(pending) > q.max_count or (
            q.max_bytes and sum(s for s, _ in pending.values()) > q.max_bytes
        ):
            oldest, _ = pending.popitem(last=False)
            (self.folder / oldest[:2] / f"{oldest}.jpg").unlink(missing_ok=True)
            DROPPED["orphan_photos"] += 1
            log.warning("orphan photo over quota station=%s sha256=%s deleted", station, oldest)

    def purge_orphans(self, now_s: float | None = None) -> int:
        """Delete orphans older than the quota's retention; returns how many went.

        Args:
            now_s: the present as a Unix time, s (default: the system clock).
        """
        cutoff = (time.time() if now_s is None else now_s) - self.orphans.retention_s
        gone = 0
        with self._lock:
            for pending in self._orphans.values():
                for sha, (_size, at) in list(pending.items()):
                    if at < cutoff:
                        del pending[sha]
                        (self.folder / sha[:2] / f"{sha}.jpg").unlink(missing_ok=True)
                        gone += 1
        if gone:
            log.info("purged %d orphan photo(s)", gone)
        return gone

    def maybe_purge(self) -> None:
        """Purge at most once an hour, when this replica leads."""
        now = time.monotonic()
        if now - self._last_purge >= PURGE_EVERY_S:
            if self._leader is not None and not self._leader():
                return
            self._last_purge = now
            self.purge()

    def purge(self, now_s: float | None = None) -> int:
        """Delete photos older than the retention period; returns how many went.

        Args:
            now_s: the present as a Unix time, s (default: the system clock).
        """
        if self.retention_days is None:
            return 0
        cutoff = (time.time() if now_s is None else now_s) - self.retention_days * DAY_S
        gone = 0
        for path in self.folder.glob("*/*.jpg"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                continue
        if gone:
            log.info("purged %d photo(s) older than %s days", gone, self.retention_days)
        return gone
