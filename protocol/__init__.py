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
    RmaCancellation,
    RmaChange,
    RmaState,
    Telemetry,
    decode_rma_change,
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
from protocol.topics import SHARE_GROUP, Topics, shared

__all__ = [
    "SCHEMA_VERSION",
    "SHARE_GROUP",
    "Command",
    "CommandName",
    "CommandReply",
    "CommandState",
    "RmaCancellation",
    "RmaChange",
    "RmaState",
    "Telemetry",
    "decode_rma_change",
    "shared",
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
