"""`hazmap chemicals [--json]`: the chemical catalogue with every figure and its source.

Registered on the root command by one import in app/cli.py. Reads the shipped catalogue
(data/reference/chemicals.csv, no store needed) and prints, per substance, its class, its 剧毒
flag and each figure with its unit and source ("not checked" where the source says so), then
the GB 18218-2018 α and grade tables the major-hazard grading applies.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from app.cli import cli

# Units by the column's suffix (the catalogue names its units so); flags and kinds have none.
_UNITS = (("_q_t", "t"), ("_m", "m"), ("_pct", "vol %"), ("_m3", "mg/m³"))


def _unit(figure: str) -> str:
    return next((unit for suffix, unit in _UNITS if figure.endswith(suffix)), "")


def catalogue_document() -> dict:
    """The catalogue as plain JSON values: one entry per substance with its figures and
    their sources, and the grading tables."""
    from data.reference import catalogue_figures, load_chemicals
    from spatial.grading import grading_tables

    chemicals = load_chemicals()
    figures = catalogue_figures(chemicals)
    substances = []
    for un, group in figures.groupby("un_number", sort=False):  # 37 substances
        row = chemicals.loc[un]
        substances.append({
            "un_number": un, "name_zh": row["name_zh"], "name_en": row["name_en"],
            "hazard_class": row["hazard_class"], "packing_group": row["packing_group"] or None,
            "gas_detector": row["gas_detector"] or None, "highly_toxic": bool(row["highly_toxic"]),
            "figures": [{"figure": f.figure, "value": f.value, "unit": _unit(f.figure) if f.value is not None else "",
                         "source": f.source, "checked": bool(f.checked)}
                        for f in group.itertuples(index=False)],
        })
    return {"chemicals": substances, "grading": grading_tables()}


@cli.command("chemicals")
def chemicals(as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False) -> None:
    """The chemical catalogue: every figure (GB 18218 Q and β, ERG 2016 distances, LEL, OEL, 剧毒) and its source."""
    document = catalogue_document()
    if as_json:
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    for s in document["chemicals"]:
        head = f"UN{s['un_number']}  {s['name_zh']}  {s['name_en']}  class {s['hazard_class']}"
        head += f" PG {s['packing_group']}" if s["packing_group"] else ""
        head += "  剧毒 highly toxic" if s["highly_toxic"] else ""
        typer.echo(head)
        for f in s["figures"]:
            if f["figure"] == "highly_toxic":
                value = "yes" if f["value"] else "no"
            else:
                value = "—" if f["value"] is None else f"{f['value']} {f['unit']}".strip()
            typer.echo(f"  {f['figure']:<22} {value:<12} {f['source'] or '(no source)'}")
    typer.echo("GB 18218-2018 grading")
    for r in document["grading"]:
        typer.echo(f"  {r['table']:<6} {r['band']:<28} {r['value']:<5} {r['source']}")
