"""docs/settings.md, generated from the settings objects: every key, default, unit and source.

    python -m app.settings_doc           # rewrite docs/settings.md
    python -m app.settings_doc --check   # exit 1 when docs/settings.md is not current
    hazmap settings --markdown           # print it

Two parts: the app's `Settings` (app/settings.py: defaults <- hazmap.toml <- HAZMAP_*
environment), and the rules' thresholds (frozen dataclasses with `setting(...)` metadata in
spatial/rules/, the rows `hazmap rules settings` prints). A unit comes from the field's
metadata when it gives one, else from its name's suffix (the house rule: units in names).
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from app.settings import Settings

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
REGENERATE = "python -m app.settings_doc"

# name suffix -> unit (the house rule puts the unit in the name)
_SUFFIX_UNITS = {"_s": "s", "_ms": "ms", "_m": "m", "_km": "km", "_kmh": "km/h", "_bytes": "bytes", "_t": "t",
                 "_pct": "%", "_deg": "°"}


def _unit(name: str, extra: dict) -> str:
    if extra.get("unit"):
        return str(extra["unit"])
    for suffix, unit in sorted(_SUFFIX_UNITS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return unit
    return ""


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value) -> str:
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""` (empty)'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (tuple, list)):
        return "`[" + ", ".join(map(str, value)) + "]`"
    return f"`{value}`"


def app_rows() -> list[dict]:
    """One row per field of the app's Settings, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        description = field.description or ""
        if typing.get_origin(field.annotation) is typing.Literal:
            description = (description.rstrip(".") + ". One of: "
                           + ", ".join(f"`{v}`" for v in typing.get_args(field.annotation)) + ".")
        rows.append({"key": name, "env": f"HAZMAP_{name.upper()}", "default": field.default,
                     "unit": _unit(name, extra), "source": extra.get("source", ""), "description": description})
    return rows


def rule_rows() -> list[dict]:
    from spatial.rules.engine import engine_settings_rows
    from spatial.rules.points import point_settings_rows

    return engine_settings_rows() + point_settings_rows()


def render() -> str:
    lines = [
        "# Settings reference",
        "",
        f"Generated from the settings objects by `{REGENERATE}`; do not edit by hand (a test fails",
        "when this file is not current, and says the command).",
        "",
        "## The app",
        "",
        "`app/settings.py`. Each key is read, last wins, from: its default, the `hazmap.toml` in the",
        "working directory (`key = value`; deploy/hazmap.toml is an example), the environment",
        "variable `HAZMAP_<KEY>`. `hazmap settings` prints the settings in force.",
        "",
        "| key | environment | default | unit | what (and the regulation behind it, when one is) |",
        "|---|---|---|---|---|",
    ]
    for row in app_rows():
        what = row["description"] + (f" Source: {row['source']}." if row["source"] else "")
        lines.append(f"| `{row['key']}` | `{row['env']}` | {_cell(_default(row['default']))} | {_cell(row['unit'])} "
                     f"| {_cell(what)} |")
    lines += [
        "",
        "## The rules",
        "",
        "`spatial/rules/` (one frozen settings dataclass per rule; `hazmap rules settings` prints them).",
        "These are the code's defaults; they are not read from `hazmap.toml` or the environment yet.",
        "The source column names the regulation a figure comes from, or says it is an engineering",
        "default.",
        "",
        "| rule | key | default | unit | source |",
        "|---|---|---|---|---|",
    ]
    for row in rule_rows():
        lines.append(f"| `{row['rule']}` | `{row['name']}` | {_cell(_default(row['value']))} | {_cell(row['unit'])} "
                     f"| {_cell(row['source'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is not current: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
