"""The JT/T 808 gateway: an asyncio TCP server for BeiDou terminals.

Session: 0x0100 register -> 0x8100 with an auth code (an HMAC of the phone); 0x0102
authenticate -> 0x8001; 0x0002 heartbeat, 0x0200 report, 0x0704 batch (sub-packets
reassembled) -> 0x8001; 0x0003 logout. `send_text` (0x8300) and `confirm_alarm` (0x8203)
reach a connected terminal. Reports become one PingBatch per tick, handed to `on_pings`
and to the store through bounded queues drained in worker threads; bad input is answered
(0x8001 result 2) or dropped, and counted by reason. `stats()` is the feed health, served
as JSON on GET /stats of the stats port.
"""

from data.feeds.gateway.server import (
    TEXT_DISPLAY_TTS,
    UNREGISTERED_PREFIX,
    Jt808Gateway,
    fetch_stats,
    format_stats,
    run_gateway,
    vehicle_ids_by_phone,
)
from data.feeds.gateway.session import (
    RESULT_FAILED,
    RESULT_MESSAGE_ERROR,
    RESULT_OK,
    RESULT_UNSUPPORTED,
    TerminalSession,
    readable_header,
)
from data.feeds.gateway.settings import GatewaySettings
from data.feeds.gateway.sinks import BatchPipe, concat_batches

__all__ = [
    "RESULT_FAILED", "RESULT_MESSAGE_ERROR", "RESULT_OK", "RESULT_UNSUPPORTED", "TEXT_DISPLAY_TTS",
    "UNREGISTERED_PREFIX", "BatchPipe", "GatewaySettings", "Jt808Gateway", "TerminalSession", "concat_batches",
    "fetch_stats", "format_stats", "readable_header", "run_gateway", "vehicle_ids_by_phone",
]
