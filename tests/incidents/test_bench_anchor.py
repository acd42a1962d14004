"""The incidents bench's anchor (bench/incidents.py `_raw_insert`) writes the very rows the apply
wrote, on each backend: a faster anchor that dropped or changed rows would flatter nothing but
itself."""

from __future__ import annotations

import pandas as pd

from bench.incidents import _fresh_postgres, _raw_insert, synthetic_year
from data.demo import build_world
from data.incidents import TABLES, IncidentStore, incident_cursor
from data.store import Store

KEYS = {"incidents": ["id"], "incident_recipients": ["incident_id", "recipient_id"],
        "incident_transitions": ["id"], "incident_outbox": ["delivery_id"],
        "incident_applied": ["episode_start", "episode_id", "rule", "phase", "ordinal"],
        "incident_kpis": ["grouping", "key", "day", "metric", "bin"],
        "incident_kpi_totals": ["grouping", "key", "metric", "bin"]}


def _tables(store: Store) -> dict[str, pd.DataFrame]:
    reader = IncidentStore(store)
    with store.engine.connect() as connection:
        frames = {t.name: reader._read(connection, t) for t in TABLES if t is not incident_cursor}
    # the logs' seq is the target's own (the anchor leaves it to the table, as the apply does)
    return {name: frame.drop(columns=[c for c in ("seq",) if c in frame.columns and name != "incident_applied"])
            .sort_values(KEYS[name], kind="stable", ignore_index=True) for name, frame in frames.items()}


def test_the_raw_insert_anchor_writes_every_row_the_apply_wrote(store, store_url, tmp_path):
    world = build_world(3, 0.05)
    events = synthetic_year(world, 400, seed=3)
    applied = IncidentStore(store, world).apply_events(events, source="bench")
    assert applied.applied == len(events) and applied.opened > 300
    if store.dialect == "sqlite":
        target_url, drop = f"sqlite:///{(tmp_path / 'raw.sqlite').as_posix()}", (lambda: None)
    else:
        target_url, drop = _fresh_postgres(store_url)
    try:
        seconds, rows = _raw_insert(store, target_url, chunk_rows=700)
        source = _tables(store)
        assert rows == sum(len(frame) for frame in source.values()) and seconds > 0
        target_store = Store.open(target_url)
        try:
            copied = _tables(target_store)
        finally:
            target_store.close()
        for name, frame in source.items():
            assert len(frame) > 0, name
            pd.testing.assert_frame_equal(copied[name], frame, check_dtype=True, obj=name)
    finally:
        drop()
