"""MQTT topic tree, per site and station.

Layout (``rs/v1`` is the contract's major version)::

    rs/v1/{site}/rma                      gateway -> stations   RmaAnnouncement | RmaCancellation
    rs/v1/{site}/policy                   gateway -> stations   policies (retained; issue 3)
    rs/v1/{site}/head                     gateway -> stations   HeadRevision (retained)
    rs/v1/{site}/{station}/status         station -> gateway    StationStatus (retained, LWT)
    rs/v1/{site}/{station}/event          station -> gateway    ParcelEvent (QoS 1)
    rs/v1/{site}/{station}/photo          station -> gateway    PhotoUpload (QoS 1)
    rs/v1/{site}/{station}/telemetry      station -> gateway    Telemetry (QoS 0)
    rs/v1/{site}/{station}/sync/req       station -> gateway    SyncRequest (QoS 1)
    rs/v1/{site}/{station}/sync/resp      gateway -> station    SyncBatch (QoS 1)
    rs/v1/{site}/{station}/cmd            gateway -> station    Command (QoS 1, never retained)
    rs/v1/{site}/{station}/cmd/reply      station -> gateway    CommandReply (QoS 1)

Everything a station may publish lies under ``rs/v1/{site}/{station}/`` and is not one of
the gateway's topics (``sync/resp``, ``cmd``): the broker ACL (``hardware/mosquitto.acl``)
enforces it. Several gateway replicas share the ingest through :func:`shared`.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "rs/v1"
SHARE_GROUP = "gateways"


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    """Return the MQTT 5 shared-subscription form ``$share/{group}/{topic_filter}``.

    Raises:
        ValueError: when ``group`` is empty or holds ``/``, ``+`` or ``#``.
    """
    return f"$share/{_check_segment(group, 'share group')}/{topic_filter}"


def _check_segment(value: str, what: str) -> str:
    if not value or any(c in value for c in "/+#") or value != value.strip():
        raise ValueError(f"{what} {value!r} is not a valid MQTT topic segment")
    return value


@dataclass(frozen=True)
class Topics:
    """Topic names for one site (and, for the station topics, one station).

    Raises:
        ValueError: when ``site`` or ``station`` is empty or holds ``/``, ``+`` or ``#``.
    """

    site: str
    station: str = "+"

    def __post_init__(self) -> None:
        _check_segment(self.site, "site")
        if self.station != "+":
            _check_segment(self.station, "station")

    @property
    def rma(self) -> str:
        """RMA announcements for every station of the site."""
        return f"{ROOT}/{self.site}/rma"

    @property
    def policy(self) -> str:
        """Sorting policies for every station of the site (retained, versioned)."""
        return f"{ROOT}/{self.site}/policy"

    @property
    def head(self) -> str:
        """The site's head revision (retained ``HeadRevision``): stations see a gap by it."""
        return f"{ROOT}/{self.site}/head"

    @property
    def telemetry(self) -> str:
        """Periodic station metrics."""
        return f"{ROOT}/{self.site}/{self.station}/telemetry"

    @property
    def command(self) -> str:
        """Commands to the station (never retained)."""
        return f"{ROOT}/{self.site}/{self.station}/cmd"

    @property
    def command_reply(self) -> str:
        """The station's command replies (``accepted``, then ``done`` or ``failed``)."""
        return f"{ROOT}/{self.site}/{self.station}/cmd/reply"

    @property
    def status(self) -> str:
        """Station birth / last-will status (retained)."""
        return f"{ROOT}/{self.site}/{self.station}/status"

    @property
    def event(self) -> str:
        """Parcel events from the station."""
        return f"{ROOT}/{self.site}/{self.station}/event"

    @property
    def photo(self) -> str:
        """Parcel photos (JPEG evidence) from the station."""
        return f"{ROOT}/{self.site}/{self.station}/photo"

    @property
    def sync_request(self) -> str:
        """Catch-up requests from the station."""
        return f"{ROOT}/{self.site}/{self.station}/sync/req"

    @property
    def sync_response(self) -> str:
        """Catch-up batches to the station."""
        return f"{ROOT}/{self.site}/{self.station}/sync/resp"

    @staticmethod
    def station_of(topic: str) -> tuple[str, str]:
        """Return ``(site, station)`` from a station topic.

        Raises:
            ValueError: when the topic is not a station topic of this contract.
        """
        parts = topic.split("/")
        if len(parts) < 5 or "/".join(parts[:2]) != ROOT:
            raise ValueError(f"not a station topic: {topic!r}")
        return parts[2], parts[3]
