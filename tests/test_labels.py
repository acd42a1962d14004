"""Every coded value the screen shows has a Chinese and an English label (issue 16: "Chinese by
default; every label switchable to English"). The keys come from their source of truth
(spatial/incidents/lifecycle.py, spatial/model.py), so a new key without a label fails here, and the
store refuses to write an incident action lifecycle does not name."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from layers.labels import RULE_TITLES, VALUE_LABELS, actor_label, rule_title, value_label
from layers.panels import build_panel
from spatial.incidents import lifecycle

CJK = re.compile(r"[\u4e00-\u9fff]")

VOCABULARIES = {  # vocabulary -> the keys the system writes
    "incident_status": lifecycle.STATES,
    "rule_state": lifecycle.RULE_STATES,
    "incident_action": lifecycle.TRANSITION_ACTIONS + lifecycle.OUTBOX_ACTIONS,
    "outcome": lifecycle.OUTCOMES,
    "recipient_kind": lifecycle.RECIPIENT_KINDS,
}


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
def test_every_incident_key_has_a_chinese_and_an_english_label(vocabulary):
    labels = VALUE_LABELS[vocabulary]
    for key in VOCABULARIES[vocabulary]:
        assert key in labels, f"{vocabulary}: no label for {key!r}"
        zh, en = labels[key]
        assert CJK.search(zh), f"{vocabulary}.{key}: the Chinese label {zh!r} is not Chinese"
        assert en and not CJK.search(en) and en != key, f"{vocabulary}.{key}: the English label {en!r}"
        assert value_label(vocabulary, key, "zh") == zh and value_label(vocabulary, key, "en") == en


def test_the_actions_the_store_writes_are_those_lifecycle_names():
    """The store's writer of transitions and outbox rows refuses an unnamed action, so none reaches
    the wall unlabelled (the store tests exercise every path that writes one)."""
    from data.incidents import _check_actions

    _check_actions(pd.DataFrame({"action": list(lifecycle.TRANSITION_ACTIONS)}), lifecycle.TRANSITION_ACTIONS,
                   "transition")
    with pytest.raises(RuntimeError, match="not_named"):
        _check_actions(pd.DataFrame({"action": ["signed", "not_named"]}), lifecycle.TRANSITION_ACTIONS, "transition")


def test_the_store_names_every_action_it_writes_in_its_source():
    """Each action literal the incident store and the channels write is one lifecycle names (a
    belt to the store's own check: a path no store test exercises is still caught here)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = (r'"action":\s*"([a-z_]+)"', r'_objects\("([a-z_]+)",', r'"action":\s*_objects\("([a-z_]+)"',
                r'_transition\(inc_id,\s*"([a-z_]+)"', r'_transitions\([^,]+,\s*"([a-z_]+)"',
                r'append_history\(\s*connection,[^,]+,\s*"([a-z_]+)"')
    found = set()
    for path in ("data/incidents.py", "data/channels/store.py", "spatial/incidents/lifecycle.py",
                 "spatial/incidents/batch.py"):
        source = (root / path).read_text()
        for pattern in patterns:
            found |= set(re.findall(pattern, source))
    found -= {"system"}  # _objects("system", k): an actor, not an action
    assert found, "no action literal found: the patterns no longer match the store's code"
    assert found <= set(lifecycle.TRANSITION_ACTIONS + lifecycle.OUTBOX_ACTIONS), sorted(found)
    kinds = re.findall(r'"kind":\s*"([a-z]+)"', (root / "data/channels/store.py").read_text())
    assert {f"driver_{k}_answered" for k in kinds} <= set(lifecycle.DRIVER_ACTIONS)


def test_actors_are_named_in_the_screens_language():
    assert actor_label("system", "zh") == "系统" and actor_label("system", "en") == "System"
    assert actor_label("rule:speeding", "zh") == "规则 · 超速"
    assert actor_label("rule:speeding", "en") == "Rule · Speeding"
    assert actor_label("terminal:013800138000", "en") == "Terminal · 013800138000"
    assert actor_label("王伟", "en") == "王伟" and actor_label("dept", "zh") == "dept"  # people as they are
    assert actor_label(None, "zh") == ""
    assert rule_title("a_future_rule", "zh") == "a_future_rule" and set(RULE_TITLES) >= {"speeding", "point_level"}


def _texts(node) -> list[str]:
    """Every text a Dash tree shows (its components' children)."""
    out = []
    children = node if isinstance(node, (list, tuple)) else getattr(node, "children", None)
    if children is None:
        return []
    if isinstance(children, str):
        return [children]
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if isinstance(child, str):
            out.append(child)
        elif child is not None and not isinstance(child, (int, float)):
            out += _texts(child)
    return out


def _incident_data() -> dict:
    at = pd.Timestamp("2026-11-02T01:00:00Z")
    actions = list(lifecycle.TRANSITION_ACTIONS)
    recipients = pd.DataFrame({
        "recipient_id": [f"DEPT-{i}" for i in range(len(lifecycle.STATES))],
        "role": ["traffic_police", "district_office", "carrier", None],
        "state": list(lifecycle.STATES), "signed_at": [None, at, at, at]})
    history = pd.DataFrame({
        "at": [at] * len(actions), "action": actions, "recipient_id": [None] * len(actions),
        "actor": (["rule:speeding", "system", "terminal:013800138000"] * len(actions))[:len(actions)]})
    row = {"id": "INC-1", "rule": "speeding", "severity": 1, "status": "signed", "state": "ended",
           "subject_id": "VEH-000001", "first_time": at, "last_time": at, "evidence": {}, "lon": None, "lat": None}
    return {"incident": row, "recipients": recipients, "history": history, "evidence": None}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_incident_panel_shows_labels_not_the_stores_keys(language):
    panel = build_panel("incidents", _incident_data(), language, [], actions=("sign", "dispose", "close"))
    shown = _texts(panel)
    keys = {*lifecycle.STATES, *lifecycle.RULE_STATES, *lifecycle.TRANSITION_ACTIONS, "traffic_police",
            "district_office", "carrier", "system", "rule:speeding"}
    assert not keys & set(shown), sorted(keys & set(shown))
    for key in lifecycle.TRANSITION_ACTIONS:
        assert value_label("incident_action", key, language) in shown
    for key in lifecycle.STATES:
        assert value_label("incident_status", key, language) in shown
    assert value_label("rule_state", "ended", language) in shown
    assert value_label("department_kind", "district_office", language) in shown
    assert value_label("outcome", "false_alarm", language) in shown  # the disposal form's choices
    if language == "zh":  # the Chinese panel says nothing in English but ids, numbers and the rule's key
        english = [s for s in shown if re.search(r"[a-z]{3,}", s) and not CJK.search(s)
                   and not re.fullmatch(r"[A-Z]+-[\w-]+", s)]
        assert not english, english


def _evidence_table(panel) -> dict[str, str]:
    """The evidence section's label -> value (the fields table inside .hz-incident-evidence)."""
    def walk(node):
        yield node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, (list, tuple)) else [children]:
            if child is not None and not isinstance(child, (str, int, float)):
                yield from walk(child)

    (box,) = [n for top in panel for n in walk(top) if "hz-incident-evidence" in (getattr(n, "className", "") or "")]
    rows = [n for n in walk(box) if type(n).__name__ == "Tr"]
    return {r.children[0].children: r.children[1].children for r in rows}


def test_the_incident_evidence_is_labelled_and_readable_in_both_languages():
    data = _incident_data()
    data["incident"]["rule"] = "restricted_zone"
    data["incident"]["evidence"] = {
        "speed_kmh": 104.4, "excess_kmh": 24.400000000000006, "distance_m": 1481.5568379274523,
        "entry_time": "2026-11-01T23:01:04.137+00:00", "entry_time_local": "2026-11-02T07:01:04.137+08:00",
        "closed_by": "2026-11-01T23:05:09.000+00:00", "close_reason": "left_zone", "pings_outside": False,
        "zone_kind": "city_core", "closed_from": "07:00", "median_lon": 121.11208396085172,
        "un_numbers_hit": ["1114", "1230"], "goods_without_erg": [], "last_wash": None, "confirmed_ms": 1793570700000,
        "nearest_place": {"id": "SA-000001", "kind": "service_areas", "distance_m": 34015.49962528699},
        "conflicts": [{"un_a": "0081", "class_a": "1.1D"}, {"un_a": "1203", "class_a": "3"}],
        "a_key_no_rule_writes": "as written",
    }
    zh = _evidence_table(build_panel("incidents", data, "zh", []))
    assert zh == {
        "速度(km/h)": "104.4", "超速(km/h)": "24.4", "距离(米)": "1,482",
        "驶入时间": "2026-11-02 07:01:04",  # the screen's time, to the second; the `_local` copy not repeated
        "解除点位时间": "2026-11-02 07:05:09",  # restricted_zone's closed_by is a ping's time
        "解除原因": "驶离区域", "末点已在区外": "否", "区域类型": "城区限时禁行区", "限行开始": "07:00",
        "停车点经度": "121.112084", "禁行货物UN号": "1114、1230", "无ERG数据的货物": "—", "上次洗消": "—",
        "确认时间": "2026-11-02 06:05:00",  # ms since the epoch, as a time
        "最近场所": "编号: SA-000001，类型: 服务区，距离(米): 34,015",
        "禁配组合": "UN号A: 0081，类别A: 1.1D / UN号A: 1203，类别A: 3",
        "a_key_no_rule_writes": "as written",  # a key from outside the rules: shown as it came
    }
    en = _evidence_table(build_panel("incidents", data, "en", []))
    assert en["Cleared because"] == "Left the zone" and en["Last ping outside"] == "No"
    assert en["Nearest place"] == "ID: SA-000001, Kind: Service area, Distance (m): 34,015"
    assert en["Barred goods' UN numbers"] == "1114, 1230"
    # route_deviation's closed_by is a reason, labelled as one
    data["incident"]["rule"] = "route_deviation"
    data["incident"]["evidence"] = {"closed_by": "back_in_corridor"}
    assert _evidence_table(build_panel("incidents", data, "zh", [])) == {"解除依据": "回到核定路线"}


def test_evidence_durations_read_in_hours_and_minutes():
    """A 9-hour silence reads 9小时, not 32400 under a 秒 label; thresholds likewise."""
    from layers.evidence import duration_text

    data = _incident_data()
    data["incident"]["rule"] = "offline"
    data["incident"]["evidence"] = {"silent_s": 32_415.0, "offline_after_s": 1200.0, "carried_over_restart": True}
    zh = _evidence_table(build_panel("incidents", data, "zh", []))
    assert zh == {"静默时长": "9小时", "离线判定阈值": "20分", "跨监测服务重启延续": "是"}
    en = _evidence_table(build_panel("incidents", data, "en", []))
    assert en["Silent"] == "9 h" and en["Offline after"] == "20 min"
    assert [duration_text(s, "zh") for s in (0.25, 45, 615, 3725, 90_061)] == \
        ["0.2秒", "45秒", "10分15秒", "1小时2分", "1天1小时"]
    assert duration_text(615, "en") == "10 min 15 s"
