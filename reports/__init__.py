"""Renderers of the area risk snapshot and the daily briefing: PDF, PNG, XLSX, GeoJSON and an
offline HTML map. They read only what spatial/ computed (a Snapshot, a Briefing) and layers'
styles, never app/ or data/, so the same numbers reach every format."""

from reports.snapshot import FORMATS, write_snapshot

__all__ = ["FORMATS", "write_snapshot"]
