"""Ingest benchmark: the JT/T 808 gateway under a fleet of simulated terminals.

The gateway runs here (asyncio, a real store, LiveState.apply_pings as the live sink); the
fleet runs in its own spawned process and connects over loopback. Figures, one name=value a
line: the sustained reports/s, the latency from a frame being read to its batch being in
the live state (p50/p99, measured in the gateway process), what was dropped (sent but never
received, plus received and dropped or failed in a sink; `lost_in_transit` the first part), peak RSS, and
the anchor measured in the same run: the codec alone (split, decode, batch) on the same kind
of frames, with ratio = gateway reports/s / decode-only reports/s and the CPU the gateway
spends per report against the codec's.

    python -m bench.ingest --connections 2000 --reports-per-s 5000 --duration-s 60
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from data.feeds.gateway import GatewaySettings, Jt808Gateway
from data.feeds.jt808 import FrameSplitter, decode_frame, decode_message, reports_to_batch
from data.feeds.loadgen import (
    NINGBO_LAT,
    NINGBO_LON,
    PROTOCOL_VERSION_2019,
    FleetProcess,
    LoadConfig,
    SimTerminal,
    make_report,
    raise_open_files_limit,
    terminal_phones,
)
from spatial.model import LiveState


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_only_anchor(frames_count: int = 20_000, seed: int = 808) -> dict:
    """The codec alone on frames like the fleet's (half 2013, half 2019 0x0200 reports): split
    the byte stream, decode every frame and message, build one PingBatch per 500 reports."""
    rng = random.Random(seed)
    terminals = [SimTerminal(phone, PROTOCOL_VERSION_2019 if i % 2 else None)
                 for i, phone in enumerate(terminal_phones(200))]
    now = datetime.now(timezone.utc)
    stream = b"".join(
        terminals[i % len(terminals)].report(
            make_report(now, NINGBO_LON + rng.uniform(-0.3, 0.3), NINGBO_LAT + rng.uniform(-0.2, 0.2),
                        rng.uniform(0, 80), rng.randrange(360))
        )[1]
        for i in range(frames_count)
    )
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    started, cpu_started = time.perf_counter(), _cpu_s()
    splitter = FrameSplitter()
    ids: list[str] = []
    reports: list = []
    batches = 0
    for chunk in chunks:
        for frame in splitter.feed(chunk):
            packet = decode_frame(frame)
            reports.append(decode_message(packet))
            ids.append(packet.header.phone)
            if len(reports) == 500:
                reports_to_batch(ids, reports)
                ids, reports, batches = [], [], batches + 1
    if reports:
        reports_to_batch(ids, reports)
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu_started
    return {"decode_only_reports_per_s": frames_count / elapsed,
            "decode_only_cpu_us_per_report": cpu / frames_count * 1e6}


async def _run_gateway_under_fleet(
    gateway: Jt808Gateway, config_args: dict, timeout_s: float
) -> tuple[dict, dict, float]:
    await gateway.start()
    try:
        cpu_started = _cpu_s()
        fleet = FleetProcess(LoadConfig(host="127.0.0.1", port=gateway.port, **config_args))
        load = await fleet.result_async(timeout_s)
        await asyncio.sleep(2 * gateway.settings.batch_interval_s)
    finally:
        await gateway.stop()
    return load, gateway.stats(), _cpu_s() - cpu_started


def run_ingest_bench(
    connections: int = 2000,
    reports_per_s: float = 5000.0,
    duration_s: float = 60.0,
    store_url: str | None = None,
    print_fn: Callable[[str], None] | None = print,
) -> dict:
    """Run the gateway against `connections` terminals sending `reports_per_s` together for
    `duration_s`; prints the figures (name=value lines) and returns them. The store is a
    fresh SQLite file in a temporary folder unless `store_url` is given."""
    from data.store import Store

    open_files = raise_open_files_limit()
    if open_files < 2 * connections + 256:  # both ends of every connection live on this machine
        raise RuntimeError(f"RLIMIT_NOFILE {open_files} is too low for {connections} connections")
    anchor = decode_only_anchor()
    phones = terminal_phones(connections)
    mapping = {phone: f"VEH-{i:05d}" for i, phone in enumerate(phones)}
    live = LiveState()
    with tempfile.TemporaryDirectory(prefix="hazmap-ingest-") as folder:
        url = store_url or f"sqlite:///{Path(folder) / 'ingest.sqlite'}"
        store = Store.open(url, upgrade=True)
        try:
            settings = GatewaySettings(port=0, stats_port=None, latency_samples=1 << 20)
            gateway = Jt808Gateway(mapping, live.apply_pings, store, settings)
            gc.freeze()  # as run_gateway does: start-up objects stay out of the full collections
            config = {"phones": tuple(phones), "reports_per_s": reports_per_s, "duration_s": duration_s}
            load, stats, server_cpu_s = asyncio.run(
                _run_gateway_under_fleet(gateway, config, timeout_s=duration_s + 180)
            )
        finally:
            store.close()
    if load.get("crashed"):
        raise RuntimeError(f"the load generator failed: {load['errors']}")
    window_s = max(load["send_ended_at"] - load["send_started_at"], 1e-9)
    received = stats["reports_received"]
    gateway_rate = received / window_s
    sinks = stats["sinks"]
    dropped, lost_in_transit = dropped_reports(load, stats)
    figures = {
        "connections": load["authenticated"],
        "connect_failures": load["failed"],
        "duration_s": round(window_s, 3),
        "sent_reports": load["sent_reports"],
        "received_reports": received,
        "acked_reports": load["acked_reports"],
        "stored_reports": sinks["store"]["delivered_reports"],
        "live_reports": sinks["live"]["delivered_reports"],
        "vehicles_in_live_state": len(live.positions),
        "reports_per_s": round(gateway_rate, 1),
        "p50_ms": stats["latency_p50_ms"],
        "p99_ms": stats["latency_p99_ms"],
        "terminal_rtt_p50_ms": load["rtt_p50_ms"],
        "terminal_rtt_p99_ms": load["rtt_p99_ms"],
        "dropped": dropped,
        "lost_in_transit": lost_in_transit,
        "rejected": sum(stats["rejected"].values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadgen_peak_rss_mb": load["peak_rss_mb"],
        "gateway_cpu_s": round(server_cpu_s, 2),
        "gateway_cpu_us_per_report": round(server_cpu_s / max(received, 1) * 1e6, 1),
        "loadgen_cpu_s": load["cpu_s"],
        "decode_only_reports_per_s": round(anchor["decode_only_reports_per_s"], 1),
        "decode_only_cpu_us_per_report": round(anchor["decode_only_cpu_us_per_report"], 1),
        "ratio": round(gateway_rate / anchor["decode_only_reports_per_s"], 4),
        "cpu_per_report_ratio": round(
            server_cpu_s / max(received, 1) * 1e6 / anchor["decode_only_cpu_us_per_report"], 2
        ),
        "loadgen_errors": len(load["errors"]),
    }
    if print_fn is not None:
        for name, value in figures.items():
            print_fn(f"{name}={value}")
        for error in load["errors"][:5]:
            print_fn(f"# loadgen error: {error}")
    return figures


def dropped_reports(load: dict, stats: dict) -> tuple[int, int]:
    """(dropped, lost in transit): reports the terminals sent that the gateway never received,
    plus those it received and dropped (full queue) or failed to deliver to a sink."""
    lost_in_transit = max(int(load["sent_reports"]) - int(stats["reports_received"]), 0)
    sinks = stats["sinks"]
    return (lost_in_transit + stats["dropped_reports"] + sinks["store"]["failed_reports"]
            + sinks["live"]["failed_reports"], lost_in_transit)


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The bench's options, one definition for `python -m bench.ingest` and `hazmap bench ingest`."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=2000, help="concurrent terminal connections")
    p.add_argument("--reports-per-s", type=float, default=5000.0, help="total reports per second")
    p.add_argument("--duration-s", type=float, default=60.0, help="seconds of load")
    p.add_argument("--store-url", default=None, help="store to write to (default: a fresh SQLite file)")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    args = parser(prog).parse_args(argv)
    return run_ingest_bench(args.connections, args.reports_per_s, args.duration_s, args.store_url)


if __name__ == "__main__":
    main()
