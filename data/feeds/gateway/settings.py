"""The gateway's limits and knobs, each with its unit in its name."""

from __future__ import annotations

from dataclasses import dataclass

from data.feeds.jt808 import MAX_FRAME_BYTES


@dataclass(frozen=True)
class GatewaySettings:
    """Settings of the JT/T 808 gateway.

    Load they are sized for: Ningbo runs 3,400-15,000 hazmat trucks reporting at most every
    30 s while moving (JT/T 794), i.e. up to 500 reports/s; the defaults hold 10x that
    (5,000 reports/s) without dropping anything.
    """

    host: str = "127.0.0.1"  # 0.0.0.0 to take terminals from the network
    port: int = 7808
    # Feed health as JSON over HTTP (GET /stats) on this port; 0 picks a free one, None turns it off.
    stats_port: int | None = 7809
    stats_host: str = "127.0.0.1"

    # --- connections --------------------------------------------------------------------------
    max_connections: int = 20_000  # global: a connection above it is closed at once
    listen_backlog: int = 4096  # a fleet reconnecting after a restart arrives all at once
    # No byte for this long closes the connection (terminals heartbeat every 60 s by default).
    idle_timeout_s: float = 300.0
    # A terminal that does not read its replies: above this many unsent bytes it is dropped.
    max_write_buffer_bytes: int = 256 * 1024

    # --- hostile or broken input ---------------------------------------------------------------
    max_frame_bytes: int = MAX_FRAME_BYTES  # longer segments are dropped as "oversize"
    # Token buckets per connection: a terminal reports every few seconds, so these only catch floods.
    # Above either budget the connection is closed ("flood").
    max_frames_per_s: float = 50.0
    max_bytes_per_s: float = 64 * 1024
    flood_burst_s: float = 5.0  # bucket depth: this many seconds of the rates above
    # A connection that has sent this many frames the gateway had to refuse is closed.
    max_bad_frames_per_connection: int = 200
    # Sub-packeted messages (0x0704 backfill) wait this long for their missing fragments.
    reassembly_timeout_s: float = 60.0
    reassembly_max_message_bytes: int = 1 << 20

    # --- session policy ------------------------------------------------------------------------
    # A phone that is not in the vehicles table still gets an auth code: its reports are kept
    # under vehicle id "UNREG-<phone>" and counted, so no position is lost while the registry
    # catches up. False answers 0x8100 result 4 (terminal not in the database).
    register_unknown_terminals: bool = True
    # Reports before a successful 0x0102 are accepted (and counted); False refuses them with
    # 0x8001 result 1. Default keeps the data: a terminal that lost its session still shows up.
    accept_unauthenticated_reports: bool = True
    # Secret the auth codes are derived from (HMAC of the phone); empty: a random one per start,
    # so terminals re-register after a restart.
    auth_secret: str = ""

    # --- batching and sinks ---------------------------------------------------------------------
    # Decoded reports are grouped into one PingBatch per tick (or sooner when this many are waiting).
    batch_interval_s: float = 0.1
    max_batch_reports: int = 5_000
    # Reports waiting for on_pings / for the store; above these bounds a new batch is dropped
    # and counted (the wire is never slowed down by a slow sink).
    live_queue_max_reports: int = 100_000
    store_queue_max_reports: int = 600_000  # two minutes at 5,000 reports/s
    # on_pings runs on the event loop between reads: in a worker thread the same CPU work fights
    # the loop for the GIL, and every socket call of the loop then waits a switch interval for it
    # back (measured in docs/performance.md). True runs it in a thread (for a sink that blocks on I/O).
    live_sink_in_thread: bool = False
    # The store writer gathers batches for this long before a write: one transaction a second
    # instead of ten (less GIL and database time per report).
    store_interval_s: float = 1.0
    store_retry_s: float = 1.0  # wait before retrying a failed store write
    store_max_attempts: int = 3  # then the batch is counted as lost ("store_failed")

    # --- feed health ----------------------------------------------------------------------------
    rate_window_s: float = 10.0  # reports/s is averaged over this sliding window
    latency_samples: int = 1 << 17  # the newest this many frame->live latencies feed p50/p99

    def __post_init__(self) -> None:
        positive = (
            "max_connections", "listen_backlog", "idle_timeout_s", "max_write_buffer_bytes", "max_frames_per_s",
            "max_bytes_per_s", "flood_burst_s", "max_bad_frames_per_connection", "reassembly_timeout_s",
            "reassembly_max_message_bytes", "batch_interval_s", "max_batch_reports", "live_queue_max_reports",
            "store_queue_max_reports", "store_max_attempts", "rate_window_s", "latency_samples",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"GatewaySettings.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("store_retry_s", "store_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"GatewaySettings.{name} must not be negative, got {getattr(self, name)!r}")
        if not 0 <= self.port <= 65535 or (self.stats_port is not None and not 0 <= self.stats_port <= 65535):
            raise ValueError(f"GatewaySettings ports must be in 0..65535, got {self.port} / {self.stats_port}")
