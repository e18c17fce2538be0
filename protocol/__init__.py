"""Wire contract between the edge station and the gateway.

Topic names, message models carrying a schema version, and (de)serialisation. Both sides
import this package; it imports neither.
"""

from protocol.messages import (
    SCHEMA_VERSION,
    ParcelEvent,
    ProtocolError,
    RmaAnnouncement,
    RmaLine,
    StationStatus,
    SyncBatch,
    SyncRequest,
    decode,
    encode,
)
from protocol.topics import Topics

__all__ = [
    "SCHEMA_VERSION",
    "ParcelEvent",
    "ProtocolError",
    "RmaAnnouncement",
    "RmaLine",
    "StationStatus",
    "SyncBatch",
    "SyncRequest",
    "Topics",
    "decode",
    "encode",
]
