"""Write a snapshot in the asked formats: all rendered in memory first, then written, so a
failure leaves no partial set of files."""

from __future__ import annotations

import re
from pathlib import Path

from reports.common import local_time, printable_tables

FORMATS = ("pdf", "png", "xlsx", "geojson", "html")


def parse_formats(text: str | None) -> tuple[str, ...]:
    if text is None or not text.strip():
        return FORMATS
    wanted = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ValueError(f"--formats must be a comma list of {', '.join(FORMATS)}, got {text!r}")
    return wanted


def base_name(snapshot) -> str:
    safe = re.sub(r"[^\w.-]+", "_", snapshot.area.name, flags=re.UNICODE).strip("_") or "area"
    return f"snapshot_{safe}_{local_time(snapshot.at).replace(' ', 'T').replace(':', '')}"


def render_snapshot(snapshot, formats=FORMATS) -> dict[str, bytes]:
    """format -> file bytes."""
    from reports.maps import render_map

    out: dict[str, bytes] = {}
    tables = printable_tables(snapshot)
    png = render_map(snapshot) if ("png" in formats or "pdf" in formats) else b""
    for fmt_name in formats:
        if fmt_name == "png":
            out["png"] = png
        elif fmt_name == "pdf":
            from reports.pdf import snapshot_pdf
            out["pdf"] = snapshot_pdf(snapshot, png, tables)
        elif fmt_name == "xlsx":
            from reports.xlsx import snapshot_xlsx
            out["xlsx"] = snapshot_xlsx(snapshot, tables)
        elif fmt_name == "geojson":
            from reports.geo import snapshot_geojson
            out["geojson"] = snapshot_geojson(snapshot)
        elif fmt_name == "html":
            from reports.html import snapshot_html
            out["html"] = snapshot_html(snapshot)
        else:
            raise ValueError(f"unknown format {fmt_name!r}: one of {', '.join(FORMATS)}")
    return out


def write_snapshot(snapshot, out_dir: Path, formats=FORMATS) -> dict[str, Path]:
    rendered = render_snapshot(snapshot, formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = base_name(snapshot)
    paths = {}
    for fmt_name, data in rendered.items():
        path = out_dir / f"{name}.{fmt_name}"
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths[fmt_name] = path
    return paths
