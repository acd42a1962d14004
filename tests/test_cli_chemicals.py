"""`hazmap chemicals [--json]`: the catalogue with every figure and its source."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from app.cli import cli
from data.reference import load_chemicals

RUNNER = CliRunner()


def invoke(*args: str):
    result = RUNNER.invoke(cli, ["chemicals", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_holds_every_figure_of_the_catalogue_with_its_source():
    document = json.loads(invoke("--json"))
    chemicals = load_chemicals()
    substances = {s["un_number"]: s for s in document["chemicals"]}
    assert set(substances) == set(chemicals.index)
    numeric = [c for c in chemicals.columns if chemicals[c].dtype == np.float64]
    for un, row in chemicals.iterrows():
        printed = {f["figure"]: f for f in substances[un]["figures"]}
        for column in numeric:
            if not np.isnan(row[column]):
                assert printed[column]["value"] == row[column], (un, column)
                assert printed[column]["source"], (un, column)
        assert substances[un]["highly_toxic"] == bool(row["highly_toxic"])
    hcn = {f["figure"]: f for f in substances["1051"]["figures"]}
    assert (hcn["erg_large_night_m"]["value"], hcn["erg_large_night_m"]["unit"]) == (2400, "m")
    assert hcn["erg_large_night_m"]["checked"] and "ERG 2016 Table 1" in hcn["erg_large_night_m"]["source"]
    assert hcn["highly_toxic"]["value"] is True and hcn["highly_toxic"]["checked"] is False
    methanol = {f["figure"]: f for f in substances["1230"]["figures"]}
    assert methanol["large_spill"]["value"] is None and "guide 131" in methanol["large_spill"]["source"]
    assert {(r["table"], r["source"]) for r in document["grading"]} == {
        ("alpha", "GB 18218-2018 table 5"), ("grade", "GB 18218-2018 table 6")}


def test_text_lists_each_substance_and_marks_what_is_not_checked():
    out = invoke()
    assert out.count("\nUN") + out.startswith("UN") == len(load_chemicals())
    hcn = out[out.index("UN1051"):out.index("\nUN", out.index("UN1051"))]
    assert "剧毒" in hcn.splitlines()[0]
    assert "erg_large_day_m" in hcn and "1100 m" in hcn
    assert "not checked (NIOSH Pocket Guide)" in hcn  # its LEL
    assert "GB 18218-2018 table 5" in out and "GB 18218-2018 table 6" in out
