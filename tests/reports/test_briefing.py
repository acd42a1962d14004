"""The daily briefing: per-day aggregates that add up whatever the partitioning, trends,
attention lists with their reasons from the thresholds; `hazmap briefing` writes PDF and XLSX
with the same figures; a closed incident exports as a printable record."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

import pandas as pd
import pytest

from spatial.briefing import AttentionSettings, briefing, day_aggregates
from tests.reports.conftest import run
from tests.services import missing_service

DAY = dt.date(2026, 11, 2)


def frames(rows):
    """rows: (id, day offset from DAY, hour, rule, severity, enterprise, disposed?)."""
    inc, rec = [], []
    for iid, off, hour, rule, sev, ent, done in rows:
        t = pd.Timestamp(DAY + dt.timedelta(days=off)).tz_localize("Asia/Shanghai") + pd.Timedelta(hours=hour)
        inc.append({"id": iid, "rule": rule, "severity": sev, "district_adcode": "330206", "first_time": t.tz_convert("UTC")})
        for who, kind in ((ent, "enterprise"), ("DEPT-EM", "department")):
            rec.append({"incident_id": iid, "recipient_id": who, "recipient_kind": kind,
                        "signed_at": t if done else pd.NaT, "disposed_at": t if done else pd.NaT})
    return pd.DataFrame(inc), pd.DataFrame(rec)


ROWS = [
    ("I1", 0, 1, "speeding", 1, "ENT-A", True),
    ("I2", 0, 23.5, "speeding", 3, "ENT-B", False),  # 23:30 local: still the day
    ("I3", 0, 9, "point_level", 2, "ENT-B", True),
    ("I4", -1, 9, "speeding", 4, "ENT-B", True),
    ("I5", -3, 9, "speeding", 3, "ENT-C", True),
    ("I6", -20, 9, "offline", 4, "ENT-C", False),
    ("I7", 1, 0.5, "speeding", 1, "ENT-C", True),  # the next day: not in the briefing
]


def test_aggregates_add_up_one_day_at_a_time():
    inc, rec = frames(ROWS)
    whole = day_aggregates(inc, rec)
    days = pd.to_datetime(inc["first_time"]).dt.tz_convert("Asia/Shanghai").dt.date
    parts = pd.concat([day_aggregates(inc[days == d], rec[rec["incident_id"].isin(inc.loc[days == d, "id"])])
                       for d in sorted(set(days))], ignore_index=True)
    key = ["day", "by", "key"]
    pd.testing.assert_frame_equal(whole.sort_values(key).reset_index(drop=True),
                                  parts.sort_values(key).reset_index(drop=True), check_dtype=False)
    day = whole[(whole["day"] == DAY.isoformat()) & (whole["by"] == "rule")].set_index("key")
    assert day.loc["speeding", "incidents"] == 2 and day.loc["point_level", "incidents"] == 1


def test_briefing_tables_trends_and_attention_with_reasons():
    inc, rec = frames(ROWS)
    brief = briefing(day_aggregates(inc, rec), DAY, thresholds=AttentionSettings())
    f = brief.figures
    assert f["incidents"] == 3 and f["red"] == 1 and f["orange"] == 1 and f["yellow"] == 1
    assert f["pushed"] == 6 and f["disposed"] == 4 and f["handling_rate"] == pytest.approx(4 / 6, abs=1e-4)
    # trends: the previous 7 days held I4 and I5, the previous 30 also I6
    assert f["mean_7d"] == pytest.approx(2 / 7, abs=1e-3) and f["mean_30d"] == pytest.approx(3 / 30, abs=1e-3)
    by_rule = brief.tables["by_rule"].set_index("key")
    assert by_rule.loc["speeding", "incidents"] == 2 and by_rule.loc["speeding", "handling_rate"] == 0.5
    # the day's gravest enterprise first: ENT-A (one red) over ENT-B (orange + yellow)
    assert brief.tables["top_enterprises"]["key"].tolist()[:2] == ["ENT-A", "ENT-B"]
    key = brief.key_attention.set_index("key")
    assert list(key.index) == ["ENT-A"] and "red incidents ≥ 1" in key.loc["ENT-A", "reason"]
    suggested = brief.suggested_attention.set_index("key")
    assert "ENT-B" in suggested.index and "orange incidents ≥ 1" in suggested.loc["ENT-B", "reason"]
    assert "ENT-C" not in suggested.index  # one yellow, one blue over the window: below every threshold


def test_thresholds_change_the_lists():
    inc, rec = frames(ROWS)
    strict = AttentionSettings.from_settings({"key_red_min": 2, "suggested_orange_min": 5,
                                              "suggested_incidents_min": 2, "window_days": 30})
    brief = briefing(day_aggregates(inc, rec), DAY, thresholds=strict)
    assert brief.key_attention.empty
    suggested = brief.suggested_attention.set_index("key")
    assert set(suggested.index) >= {"ENT-B", "ENT-C"}
    assert "incidents ≥ 2" in suggested.loc["ENT-C", "reason"]
    with pytest.raises(ValueError, match="unknown attention threshold"):
        AttentionSettings.from_settings({"key_reds": 1})


def test_briefing_cli_pdf_and_xlsx_agree(stored, tmp_path):
    from openpyxl import load_workbook

    from spatial.briefing import FIGURE_LABELS

    result = run(stored, "briefing", "--date", "2026-11-02", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    pdftotext = shutil.which("pdftotext") or missing_service("poppler's pdftotext (Debian poppler-utils)")
    text = subprocess.run([pdftotext, "-layout", str(tmp_path / "briefing_2026-11-02.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    ws = load_workbook(tmp_path / "briefing_2026-11-02.xlsx", read_only=True)["summary"]
    xlsx = {r[3]: r[2] for r in ws.iter_rows(values_only=True) if r and len(r) >= 4 and r[3] and r[3] != "key"}
    assert set(xlsx) == set(FIGURE_LABELS)
    for key, (zh, en) in FIGURE_LABELS.items():
        match = re.search(rf"(?m)^\s*{re.escape(zh)}\s+{re.escape(en)}\s+(-?[\d.]+)\s*$", text)
        assert match, key
        assert float(match.group(1)) == pytest.approx(float(xlsx[key]), abs=1e-9), key
    # the store's four incidents of the day (the fixture opens them on 2 November)
    assert xlsx["incidents"] == 4
    assert run(stored, "briefing", "--date", "2-11-2026", "--out", str(tmp_path)).exit_code != 0


def test_closed_incident_record(stored, tmp_path):
    from app.cli import UserError

    result = run(stored, "incident-record", stored["closed_incident"], "--out", str(tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    pdf = next(tmp_path.glob("*.pdf"))
    pdftotext = shutil.which("pdftotext") or missing_service("poppler's pdftotext (Debian poppler-utils)")
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())  # a narrow cell wraps its words
    assert stored["closed_incident"] in text and "driver warned" in text and "closed" in text
    assert "DEPT-" in text  # the recipients
    # the rule by its name and its evidence by labels, as the panel shows them (layers/evidence.py)
    assert "超速 speeding" in text
    for shown in ("最高速度(km/h) Top speed (km/h) 97.4", "限速(km/h) Limit (km/h) 80", "限速来源 Limit from 道路限速",
                  "速度由位置推算 Speed derived from positions 否"):
        assert shown in text, shown
    from matplotlib.image import imread

    subprocess.run([shutil.which("pdftoppm"), "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "p")], check=True)
    page = imread(next(tmp_path.glob("p*.png")))[..., :3]
    assert (page.min(axis=2) < 0.97).mean() > 0.1  # the evidence map is drawn
    # an open incident is not a record
    from data.incidents import IncidentStore
    from data.store import Store

    with Store.open(stored["url"]) as store:
        listed = IncidentStore(store, stored["world"]).list()
    open_id = listed[listed["status"] != "closed"]["id"].iloc[0]
    result = run(stored, "incident-record", open_id, "--out", str(tmp_path / "x"))
    assert isinstance(result.exception, UserError) and "not closed" in str(result.exception)
    assert not (tmp_path / "x").exists()
