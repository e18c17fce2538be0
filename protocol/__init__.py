"""Wire contract between the edge station and the gateway.

Topic names, message models carrying a schema version, and (de)serialisation. Both sides
import this package; it imports neither.
"""

from protocol.messages import (
    SCHEMA_VERSION,
    Command,
    CommandName,
    CommandReply,
    CommandState,
    ParcelEvent,
    PhotoRef,
    PhotoUpload,
    ProtocolError,
    RmaAnnouncement,
    RmaCancellation,
    RmaChange,
    RmaLine,
    RmaState,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
    decode,
    decode_rma_change,
    encode,
)
from protocol.topics import SHARE_GROUP, Topics, shared

__all__ = [
    "SCHEMA_VERSION",
    "SHARE_GROUP",
    "Command",
    "CommandName",
    "CommandReply",
    "CommandState",
    "ParcelEvent",
    "PhotoRef",
    "PhotoUpload",
    "ProtocolError",
    "RmaAnnouncement",
    "RmaCancellation",
    "RmaChange",
    "RmaLine",
    "RmaState",
    "StationStatus",
    "SyncBatch",
    "SyncRequest",
    "Telemetry",
    "Topics",
    "decode",
    "decode_rma_change",
    "encode",
    "shared",
]
