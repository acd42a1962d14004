"""Chinese and English labels of every World field and of the coded values shown on screen."""

from __future__ import annotations

from layers.style import Text, text
from spatial.incidents.lifecycle import (
    OUTBOX_ACTIONS,
    OUTCOMES,
    RECIPIENT_KINDS,
    RULE_STATES,
    STATES,
    TRANSITION_ACTIONS,
)
from spatial.model import (
    CARGO_STATES,
    DEPARTMENT_KINDS,
    ENTITY_CATEGORIES_LICENSED,
    ENTITY_CATEGORIES_UNLICENSED,
    MONITORING_POINT_KINDS,
    ROUTING_ROLES_RESOLVED,
    SENSITIVE_SITE_KINDS,
    WORLD_SPECS,
)
from spatial.incidents.titles import ACTION_TITLES
from spatial.rules.titles import RULE_TITLES  # noqa: F401  (the rules' names, one place)

FIELD_LABELS: dict[str, Text] = {
    "id": ("编号", "ID"),
    "name": ("名称", "Name"),
    "name_en": ("英文名称", "English name"),
    "adcode": ("行政区划代码", "Admin code"),
    "district_adcode": ("所在区县", "District"),
    "park_id": ("所在园区", "Chemical park"),
    "licensed": ("持证", "Licensed"),
    "category": ("类别", "Category"),
    "entity_id": ("所属单位", "Entity"),
    "people_500m": ("500米内人数", "People within 500 m"),
    "alpha": ("校正系数α", "Correction factor α"),
    "s_value": ("S值(Σq/Q)", "S (Σq/Q)"),
    "r_value": ("R值", "R value"),
    "grade": ("危险源等级", "Grade"),
    "hazard_source_id": ("所属危险源", "Hazard source"),
    "kind": ("类型", "Kind"),
    "unit": ("单位", "Unit"),
    "substance_un": ("介质UN号", "Substance UN"),
    "low_low": ("低低报", "Low-low"),
    "low": ("低报", "Low"),
    "high": ("高报", "High"),
    "high_high": ("高高报", "High-high"),
    "range_min": ("量程下限", "Range min"),
    "range_max": ("量程上限", "Range max"),
    "plate": ("车牌号", "Plate"),
    "carrier": ("承运单位", "Carrier"),
    "body": ("车体类型", "Body"),
    "approved_media": ("核准介质", "Approved media"),
    "terminal_phone": ("终端号", "Terminal"),
    "driver": ("驾驶员", "Driver"),
    "escort": ("押运员", "Escort"),
    "vehicle_id": ("车辆", "Vehicle"),
    "status": ("状态", "Status"),
    "loading_site_id": ("装货地", "Loading site"),
    "unloading_site_id": ("卸货地", "Unloading site"),
    "consignor": ("托运人", "Consignor"),
    "consignee": ("收货人", "Consignee"),
    "planned_departure": ("计划发车", "Planned departure"),
    "planned_arrival": ("计划到达", "Planned arrival"),
    "emergency_phone": ("应急电话", "Emergency phone"),
    "actual_departure": ("实际发车", "Actual departure"),
    "actual_unloading": ("实际卸货", "Actual unloading"),
    "carrier_id": ("承运企业", "Carrier enterprise"),
    "occupancy": ("人数", "Occupancy"),
    "road_class": ("道路等级", "Road class"),
    "speed_limit_kmh": ("限速(km/h)", "Speed limit (km/h)"),
    "capacity": ("车位数", "Capacity"),
    "road_id": ("所在道路", "Road"),
    "closed_from": ("限行开始", "Closed from"),
    "closed_to": ("限行结束", "Closed to"),
    "barred_classes": ("禁行类别", "Barred classes"),
    # child tables
    "un_number": ("UN号", "UN"),
    "quantity_t": ("数量(吨)", "Quantity (t)"),
    "seq": ("序号", "No."),
    "hazard_class": ("危险类别", "Class"),
    "packing_group": ("包装类别", "Packing group"),
    "waybill_id": ("运单", "Waybill"),
    # plain tables: departments and incident routing
    "contact": ("联系人", "Contact"),
    "phone": ("电话", "Phone"),
    "email": ("电子邮箱", "Email"),
    "rule": ("预警规则", "Rule"),
    "subject_kind": ("对象类型", "Subject kind"),
    "role": ("推送对象", "Recipient role"),
    "max_severity": ("最低预警级别", "Lowest level routed"),
    # shown beside the fields
    "lon_lat": ("经纬度", "Lon, lat"),
    "chemical_name": ("化学品", "Chemical"),
}

CHILD_TITLES: dict[str, Text] = {
    "hazard_source_chemicals": ("存储化学品", "Chemicals held"),
    "waybill_goods": ("运输货物", "Goods carried"),
}

VALUE_LABELS: dict[str, dict[str, Text]] = {
    # a truck's cargo state (the rules' waybill stage; an empty tank not yet washed still carries residue)
    "cargo_state": {
        "loaded": ("重载", "Loaded"),
        "empty_uncleaned": ("空载，未洗消", "Empty, not cleaned"),
        "empty_clean": ("空载，已洗消", "Empty, clean"),
        "unknown": ("未知", "Not known"),
    },
    "category": {
        "production": ("生产", "Production"),
        "use": ("使用", "Use"),
        "trade": ("经营", "Trade"),
        "transport": ("运输", "Transport"),
        "disposal": ("处置", "Disposal"),
        "school": ("学校", "School"),
        "hospital": ("医院", "Hospital"),
        "research": ("科研院所", "Research institute"),
    },
    "monitoring_kind": {
        "level": ("液位", "Level"),
        "temperature": ("温度", "Temperature"),
        "pressure": ("压力", "Pressure"),
        "combustible_gas": ("可燃气体", "Combustible gas"),
        "toxic_gas": ("有毒气体", "Toxic gas"),
    },
    "site_kind": {
        "school": ("学校", "School"),
        "kindergarten": ("幼儿园", "Kindergarten"),
        "hospital": ("医院", "Hospital"),
        "elderly_home": ("养老院", "Elderly home"),
        "residential": ("居民区", "Residential area"),
        "water_protection": ("饮用水源保护区", "Drinking-water protection zone"),
        "government": ("政府机关", "Government"),
    },
    "grade": {
        "1": ("一级", "Grade 1"),
        "2": ("二级", "Grade 2"),
        "3": ("三级", "Grade 3"),
        "4": ("四级", "Grade 4"),
    },
    "bool": {"True": ("是", "Yes"), "False": ("否", "No")},
    "status": {
        "active": ("在途", "Active"),
        "planned": ("待发", "Planned"),
        "done": ("已完成", "Done"),
        "cancelled": ("已取消", "Cancelled"),
    },
    "road_class": {
        "expressway": ("高速公路", "Expressway"),
        "arterial": ("干线公路", "Arterial road"),
        "urban": ("城市道路", "Urban road"),
    },
    "body": {"tank": ("罐式", "Tank"), "van": ("厢式", "Van")},
    "zone_kind": {
        "city_core": ("城区限时禁行区", "City core (closed at set hours)"),
        "water_protection": ("饮用水源保护区", "Drinking-water protection zone"),
        "tunnel": ("隧道", "Tunnel"),
    },
    # departments' kinds, and the routing roles (a kind or one resolved per incident)
    "department_kind": {
        "emergency_management": ("应急管理", "Emergency management"),
        "traffic_police": ("公安交警", "Traffic police"),
        "transport": ("交通运输", "Transport"),
        "ecology_environment": ("生态环境", "Ecology and environment"),
        "market_supervision": ("市场监管", "Market supervision"),
        "fire_rescue": ("消防救援", "Fire and rescue"),
        "public_security": ("公安", "Public security"),
        "housing_construction": ("住房城乡建设", "Housing and construction"),
        "economy_information": ("经济信息化", "Economy and IT"),
        "commerce": ("商务", "Commerce"),
        "health": ("卫生健康", "Health"),
        "maritime": ("海事", "Maritime"),
        "port": ("港航", "Port and shipping"),
        "natural_resources": ("自然资源规划", "Natural resources"),
        "urban_management": ("综合行政执法", "Urban management"),
        "district_office": ("属地区县", "District office"),
        "carrier": ("承运企业", "Carrier"),
        "plant": ("所属企业", "Plant"),
    },
    # incidents (spatial/incidents/lifecycle.py): a recipient's state and the incident's status (its
    # least advanced recipient's), the rule's side, what each history row did, disposal outcomes
    "incident_status": {
        "pushed": ("待签收", "Awaiting signature"),
        "signed": ("已签收", "Signed"),
        "disposed": ("已处置", "Disposed"),
        "closed": ("已办结", "Closed"),
    },
    "rule_state": {"active": ("持续中", "Ongoing"), "ended": ("已结束", "Ended")},
    "incident_action": ACTION_TITLES,
    "outcome": {  # app/api/models.py DisposeIn.outcome
        "resolved": ("已解决", "Resolved"),
        "rectified": ("已整改", "Rectified"),
        "penalised": ("已处罚", "Penalised"),
        "referred": ("已移交", "Referred"),
        "false_alarm": ("误报", "False alarm"),
    },
    "recipient_kind": {"department": ("部门", "Department"), "enterprise": ("企业", "Enterprise")},
    # who did it, when not a person: the system, a rule (rule:<rule>), a terminal (terminal:<phone>)
    "actor": {"system": ("系统", "System"), "rule": ("规则", "Rule"), "terminal": ("终端", "Terminal")},
}

# Which value vocabulary a (layer, field) uses.
VALUE_VOCABULARY: dict[tuple[str, str], str] = {
    ("entities", "category"): "category",
    ("monitoring_points", "kind"): "monitoring_kind",
    ("departments", "kind"): "department_kind",
    ("routing", "role"): "department_kind",
    ("sensitive_sites", "kind"): "site_kind",
    ("hazard_sources", "grade"): "grade",
    ("waybills", "status"): "status",
    ("roads", "road_class"): "road_class",
    ("vehicles", "body"): "body",
    ("restricted_zones", "kind"): "zone_kind",
}


def field_label(name: str, language: str) -> str:
    return text(FIELD_LABELS[name], language) if name in FIELD_LABELS else name


def value_label(vocabulary: str, value, language: str) -> str:
    """A coded value in the screen's language (the value itself when the vocabulary lacks it: data
    from outside the model, never a key the system writes, which _check_coverage holds)."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    label = VALUE_LABELS[vocabulary].get(str(value))
    return text(label, language) if label else str(value)


def rule_title(rule, language: str) -> str:
    return text(RULE_TITLES[rule], language) if rule in RULE_TITLES else str(rule)


def actor_label(actor, language: str) -> str:
    """Who made a transition: a person's name as stored; the system, a rule (by its title) or a
    terminal (with its phone) in the screen's language."""
    if actor is None or (isinstance(actor, float) and actor != actor):
        return ""
    actor = str(actor)
    kind, _, rest = actor.partition(":")
    if actor == "system" or (rest and kind in ("rule", "terminal")):
        label = value_label("actor", kind, language)
        detail = rule_title(rest, language) if kind == "rule" else rest
        return f"{label} · {detail}" if detail else label
    return actor


def _check_coverage() -> None:
    """Every field of the World contract has a label and every model vocabulary its values:
    fails at import, not on the wall, when the contract grows."""
    names = {f.name for spec in WORLD_SPECS.values() for f in spec.fields}
    missing = sorted(names - FIELD_LABELS.keys())
    if missing:
        raise RuntimeError(f"layers.labels: no label for World fields {missing}")
    for vocabulary, values in (
        ("category", (*ENTITY_CATEGORIES_LICENSED, *ENTITY_CATEGORIES_UNLICENSED)),
        ("monitoring_kind", MONITORING_POINT_KINDS),
        ("site_kind", SENSITIVE_SITE_KINDS),
        ("department_kind", (*DEPARTMENT_KINDS, *ROUTING_ROLES_RESOLVED)),
        ("cargo_state", CARGO_STATES),
        ("incident_status", STATES),
        ("rule_state", RULE_STATES),
        ("incident_action", (*TRANSITION_ACTIONS, *OUTBOX_ACTIONS)),
        ("outcome", OUTCOMES),
        ("recipient_kind", RECIPIENT_KINDS),
    ):
        unlabelled = sorted(set(values) - VALUE_LABELS[vocabulary].keys())
        if unlabelled:
            raise RuntimeError(f"layers.labels: no label for {vocabulary} values {unlabelled}")


_check_coverage()

# The screen's login form (app/auth.py), in the officer's language (the wall's language switch
# cookie, or ?lang= on the form, else settings.language).
LOGIN_LABELS: dict[str, Text] = {
    "page": ("登录", "Log in"),
    "title": ("危化品安全风险智控", "Hazmat safety command centre"),
    "user": ("用户名", "User"),
    "password": ("密码", "Password"),
    "submit": ("登录", "Log in"),
    "switch": ("English", "中文"),
}

# A drill-down or impact list narrowed to what a department or enterprise may see (app/permissions.py):
# the rows it may not see are counted, not named, so the officer knows the picture is partial.
OUTSIDE_SCOPE: Text = ("另有 {n} 个不在您的权限范围内", "{n} more outside your scope")

# An incident's evidence (the rules' own record, spatial/rules/): every key a rule writes, nested
# ones included (a conflict's, a good's, a nearest place's). Units in the label, so that a value is
# the rule's number as it wrote it; tests (tests/evidence_labels.py) hold every key the rules raise
# to a label here.
EVIDENCE_LABELS: dict[str, Text] = {
    # times of the episode, pings and readings
    "first_ping": ("首个点位时间", "First ping"), "last_ping": ("最后点位时间", "Last ping"),
    "next_ping": ("下一点位时间", "Next ping"), "previous_last_ping": ("上一运单末次点位", "Previous waybill's last ping"),
    "last_ping_on_waybill": ("运单内末次点位", "Last ping on the waybill"),
    "first_reading": ("首个读数时间", "First reading"), "last_reading": ("末次读数时间", "Last reading"),
    "last_alarming_reading": ("末次报警读数时间", "Last alarming reading"),
    "last_unchanged_reading": ("末次不变读数时间", "Last unchanged reading"),
    "last_fast_reading": ("末次过快读数时间", "Last fast reading"),
    "last_fault_reading": ("末次超量程读数时间", "Last out-of-range reading"),
    "time": ("读数时间", "Reading time"), "since": ("起始时间", "Since"), "due": ("应到时间", "Due"),
    "resumed": ("恢复时间", "Resumed"), "silent_since": ("静默起始", "Silent since"),
    "confirmed": ("确认时间", "Confirmed"), "confirmed_ms": ("确认时间", "Confirmed"),
    "decided": ("判定时间", "Decided"), "closed": ("解除时间", "Cleared"),
    "raised_at": ("告警时间", "Raised at"), "offline_from": ("离线起始", "Offline from"),
    "first_outside": ("首次偏离时间", "First outside"), "last_outside": ("末次偏离时间", "Last outside"),
    "entry_time": ("驶入时间", "Entered"), "entry_time_local": ("驶入时间(北京时间)", "Entered (Beijing time)"),
    "last_time": ("末次点位时间", "Last ping"), "segment_from": ("区段起点时间", "Segment from"),
    "segment_to": ("区段终点时间", "Segment to"),
    "stop_start": ("停车开始", "Stop start"), "stop_end": ("停车结束", "Stop end"),
    "stop_confirmed": ("停车确认时间", "Stop confirmed"),
    "stop_confirmed_local": ("停车确认时间(北京时间)", "Stop confirmed (Beijing time)"),
    "level_2_since": ("二级报警起始", "Level 2 since"), "level_2_until": ("二级报警结束", "Level 2 until"),
    "reference_time": ("参照读数时间", "Reference reading time"),
    "rest_start": ("休息开始", "Rest start"), "rest_counted": ("休息计满时间", "Rest counted at"),
    "start": ("开始", "Start"), "end": ("结束", "End"), "from": ("开始时间", "From"), "to": ("结束时间", "To"),
    # durations and thresholds
    "duration_s": ("持续时长", "Duration"), "min_duration_s": ("最短持续时长", "Minimum duration"),
    "dwell_s": ("停留阈值", "Dwell threshold"), "parking_min_s": ("停车阈值", "Parking threshold"),
    "washing_min_s": ("洗消停留阈值", "Washing threshold"), "silent_s": ("静默时长", "Silent"),
    "offline_after_s": ("离线判定阈值", "Offline after"), "threshold_s": ("判定阈值", "Threshold"),
    "unchanged_s": ("读数不变时长", "Unchanged"), "window_s": ("计算窗口", "Window"),
    "driving_s": ("连续驾驶", "Continuous driving"), "driving_s_total": ("累计驾驶", "Driving in all"),
    "max_continuous_driving_s": ("连续驾驶上限", "Continuous driving limit"),
    "min_rest_s": ("最短休息", "Minimum rest"), "rest_max_distance_m": ("休息最大移动(米)", "Rest radius (m)"),
    "min_pings": ("最少点位数", "Minimum pings"), "pings": ("点位数", "Pings"), "readings": ("读数条数", "Readings"),
    "segments": ("区段数", "Segments"),
    # distances and places
    "distance_m": ("距离(米)", "Distance (m)"), "peak_distance_m": ("最大偏离(米)", "Largest distance (m)"),
    "closing_distance_m": ("解除时距离(米)", "Distance when cleared (m)"), "corridor_m": ("路线走廊宽度(米)", "Corridor (m)"),
    "hysteresis_m": ("回差(米)", "Hysteresis (m)"), "radius_m": ("半径(米)", "Radius (m)"),
    "kind_radius_m": ("场所类型半径(米)", "Radius for the site kind (m)"),
    "erg_radius_m": ("ERG防护半径(米)", "ERG radius (m)"), "near_water_m": ("近水判定距离(米)", "Near water within (m)"),
    "exit_margin_m": ("驶出余量(米)", "Exit margin (m)"), "wash_station_match_m": ("洗消站匹配距离(米)",
                                                                        "Wash station match (m)"),
    "waybill_site_match_m": ("装卸地匹配距离(米)", "Loading site match (m)"),
    "loading_site_distance_m": ("距装货地(米)", "From the loading site (m)"),
    "unloading_site_distance_m": ("距卸货地(米)", "From the unloading site (m)"),
    "diameter_m": ("停车范围直径(米)", "Stop diameter (m)"), "max_diameter_m": ("停车范围上限(米)",
                                                                          "Stop diameter limit (m)"),
    "median_lon": ("停车点经度", "Stop longitude"), "median_lat": ("停车点纬度", "Stop latitude"),
    "median_x": ("停车点X(米)", "Stop x (m)"), "median_y": ("停车点Y(米)", "Stop y (m)"),
    "entry_lon": ("驶入点经度", "Entry longitude"), "entry_lat": ("驶入点纬度", "Entry latitude"),
    "nearest_place": ("最近场所", "Nearest place"), "nearest_water": ("最近水体", "Nearest water"),
    "other_sites": ("其他附近场所", "Other sites nearby"), "site_count": ("附近场所数", "Sites nearby"),
    "site_id": ("敏感场所", "Sensitive site"), "site_name": ("场所名称", "Site name"),
    "site_kind": ("场所类型", "Site kind"), "near_water": ("靠近水体", "Near water"),
    "loading_site_id": ("装货地", "Loading site"), "unloading_site_id": ("卸货地", "Unloading site"),
    "id": ("编号", "ID"), "name": ("名称", "Name"), "kind": ("类型", "Kind"), "severity": ("级别", "Level"),
    # speed
    "speed_kmh": ("速度(km/h)", "Speed (km/h)"), "peak_speed_kmh": ("最高速度(km/h)", "Top speed (km/h)"),
    "limit_kmh": ("限速(km/h)", "Limit (km/h)"), "limit_source": ("限速来源", "Limit from"),
    "excess_kmh": ("超速(km/h)", "Over the limit (km/h)"), "peak_excess_kmh": ("最大超速(km/h)",
                                                                            "Most over the limit (km/h)"),
    "tolerance_kmh": ("容差(km/h)", "Tolerance (km/h)"), "hysteresis_kmh": ("回差(km/h)", "Hysteresis (km/h)"),
    "closing_speed_kmh": ("解除时速度(km/h)", "Speed when cleared (km/h)"),
    "closing_limit_kmh": ("解除时限速(km/h)", "Limit when cleared (km/h)"),
    "speed_derived": ("速度由位置推算", "Speed derived from positions"),
    "any_speed_derived": ("含推算速度", "Some speeds derived"), "road_id": ("所在道路", "Road"),
    # waybills and goods
    "waybill_id": ("运单", "Waybill"), "next_waybill_id": ("下一运单", "Next waybill"),
    "previous_waybill_id": ("上一运单", "Previous waybill"), "residue_waybill_id": ("残液运单", "Residue's waybill"),
    "approved_route": ("核定路线", "Approved route"), "approved_media": ("核准介质", "Approved media"),
    "goods": ("货物", "Goods"), "unapproved": ("非核准货物", "Unapproved goods"),
    "goods_un_numbers": ("货物UN号", "Goods' UN numbers"), "un_numbers": ("UN号", "UN numbers"),
    "previous_un_numbers": ("上一运单UN号", "Previous UN numbers"), "residue_un_numbers": ("残液UN号",
                                                                                      "Residue's UN numbers"),
    "un_numbers_hit": ("禁行货物UN号", "Barred goods' UN numbers"),
    "goods_not_in_catalogue": ("不在目录的货物", "Goods not in the catalogue"),
    "goods_without_erg": ("无ERG数据的货物", "Goods without ERG data"),
    "hazard_classes": ("危险类别", "Hazard classes"), "severe_classes": ("高危类别", "Severe classes"),
    "seq": ("序号", "No."), "un_number": ("UN号", "UN"), "hazard_class": ("危险类别", "Class"),
    "loaded": ("重载", "Loaded"), "cargo": ("货物危险性", "Cargo"), "body": ("车体类型", "Body"),
    "last_wash": ("上次洗消", "Last wash"),
    # mixed loading
    "conflicts": ("禁配组合", "Conflicts"), "un_a": ("UN号A", "UN A"), "class_a": ("类别A", "Class A"),
    "un_b": ("UN号B", "UN B"), "class_b": ("类别B", "Class B"), "labels": ("标志", "Labels"),
    "clause": ("条款", "Clause"), "note": ("说明", "Note"), "explosive_involved": ("涉及爆炸品", "Explosives involved"),
    "nitrate_explosives_only": ("仅硝酸铵类爆炸品", "Nitrate explosives only"),
    "cfr_177_848": ("按49 CFR 177.848判定", "Judged by 49 CFR 177.848"),
    # stops near sensitive sites: the ERG's protective distances
    "radius_source": ("半径依据", "Radius from"), "erg_un_number": ("ERG依据UN号", "ERG UN number"),
    "erg_figure": ("ERG距离类别", "ERG distance"), "erg_period": ("昼夜", "Day or night"),
    "stop_episode_id": ("停车事件", "Stop episode"), "stop_confirmed_ms": ("停车确认时间", "Stop confirmed"),
    # restricted zones
    "zone_id": ("限行区域", "Zone"), "zone_name": ("区域名称", "Zone name"), "zone_kind": ("区域类型", "Zone kind"),
    "zone_barred_classes": ("区域禁行类别", "Zone's barred classes"),
    "barred_classes_hit": ("命中禁行类别", "Barred classes carried"), "closed_from": ("限行开始", "Closed from"),
    "closed_to": ("限行结束", "Closed to"), "pings_outside": ("末点已在区外", "Last ping outside"),
    "close_reason": ("解除原因", "Cleared because"), "closed_by": ("解除依据", "Cleared by"),
    # spatial/rules/restart.py: a silence still going at a monitor restart, closed when heard from
    "carried_over_restart": ("跨监测服务重启延续", "Carried over a monitor restart"),
    # fatigue
    "last_rest": ("上次休息", "Last rest"), "rest_kind": ("休息方式", "Rest kind"),
    # monitoring points
    "hazard_source_id": ("所属危险源", "Hazard source"), "unit": ("单位", "Unit"),
    "substance_un": ("介质UN号", "Substance UN"), "value": ("读数", "Reading"), "peak_value": ("峰值", "Peak"),
    "level": ("报警级别", "Alarm level"), "max_level": ("最高报警级别", "Highest alarm level"),
    "previous_level": ("原报警级别", "Previous level"), "change": ("级别变化", "Change"),
    "threshold": ("阈值", "Threshold"), "level_1_threshold": ("一级阈值", "Level 1 threshold"),
    "level_2_threshold": ("二级阈值", "Level 2 threshold"), "side": ("方向", "Side"),
    "deadband": ("死区", "Deadband"), "tolerance": ("不变容差", "Tolerance"),
    "range_min": ("量程下限", "Range min"), "range_max": ("量程上限", "Range max"),
    "stuck_value": ("不变读数", "Stuck value"), "peak_beyond_range": ("最大超量程读数", "Peak beyond the range"),
    "rate_per_min": ("变化速率(/分钟)", "Rate (per min)"), "peak_rate_per_min": ("最大变化速率(/分钟)",
                                                                             "Peak rate (per min)"),
    "limit_per_min": ("速率上限(/分钟)", "Rate limit (per min)"),
    "rate_fraction_per_min": ("相对变化速率(/分钟)", "Relative rate (per min)"),
    "reference_value": ("参照读数", "Reference reading"),
    # terminals and the feed
    "terminal_reported": ("终端上报", "Reported by the terminal"), "bit": ("报警位", "Alarm bit"),
    "alarm": ("报警类型", "Alarm"), "alarm_word": ("报警标志字", "Alarm word"),
    "after_feed_outage": ("接入中断之后", "After a feed outage"),
    "tracked_vehicles": ("在监车辆", "Trucks watched"), "silent_vehicles": ("静默车辆", "Trucks silent"),
    "silent_share": ("静默比例", "Share silent"), "outage_min_share": ("中断判定比例", "Outage share"),
    "outage_close_share": ("中断解除比例", "Outage cleared below"), "outage_window_s": ("中断判定窗口", "Outage window"),
    "outage_min_vehicles": ("中断判定最少车辆", "Outage minimum trucks"),
}

# Where a key means another thing in one rule (restricted_zone's `closed_by` is the ping that ended it)
EVIDENCE_LABELS_BY_RULE: dict[tuple[str, str], Text] = {
    ("restricted_zone", "closed_by"): ("解除点位时间", "Cleared at ping"),
    ("stop_near_sensitive_site", "radius_m"): ("防护半径(米)", "Protective radius (m)"),
}

# The evidence keys whose values are durations in seconds: shown as 9小时 / 1 h 2 min (layers/evidence.py)
EVIDENCE_DURATIONS = frozenset({
    "duration_s", "min_duration_s", "dwell_s", "parking_min_s", "washing_min_s", "silent_s", "offline_after_s",
    "threshold_s", "unchanged_s", "window_s", "driving_s", "driving_s_total", "max_continuous_driving_s", "min_rest_s",
    "outage_window_s"})

# The evidence keys whose values are codes (labelled through EVIDENCE_VALUES); any other value is shown
# as the rule wrote it (numbers, times, ids, names)
EVIDENCE_CODED = frozenset({"site_kind", "kind", "body", "zone_kind", "cargo", "change", "side", "close_reason",
                            "closed_by", "radius_source", "limit_source", "erg_figure", "erg_period", "rest_kind",
                            "alarm"})
EVIDENCE_VALUES: dict[str, Text] = {
    **VALUE_LABELS["site_kind"], **VALUE_LABELS["monitoring_kind"], **VALUE_LABELS["body"],
    **VALUE_LABELS["zone_kind"],
    # a nearest place's layer
    "entities": ("危化品单位", "Regulated entity"), "sensitive_sites": ("敏感场所", "Sensitive site"),
    "service_areas": ("服务区", "Service area"), "parking_lots": ("停车场", "Parking lot"),
    "repair_shops": ("维修点", "Repair shop"), "wash_stations": ("洗消站", "Wash station"),
    # spatial/rules/stop_near_sensitive_site.py CARGO_NAMES, radius_source, ERG figures
    "acute": ("急性毒性/高危", "Acute hazard"), "other": ("其他危险货物", "Other dangerous goods"),
    "empty": ("空载", "Empty"), "residue": ("残液", "Residue"),
    "erg": ("ERG防护距离", "ERG distance"), "kind": ("按场所类型", "By site kind"),
    "isolation": ("初始隔离距离", "Initial isolation"), "protective_action": ("防护行动距离", "Protective action"),
    "day": ("白天", "Day"), "night": ("夜间", "Night"),
    # point_level / point_range
    "escalated": ("升级", "Escalated"), "de-escalated": ("降级", "De-escalated"),
    "high": ("高限", "High"), "low": ("低限", "Low"), "above": ("超上限", "Above the range"),
    "below": ("低于下限", "Below the range"),
    # restricted_zone CLOSE_REASONS, route_deviation's closed_by
    "left_zone": ("驶离区域", "Left the zone"), "no_barred_cargo": ("已无禁行货物", "No barred cargo left"),
    "outside_closed_hours": ("限行时段结束", "Closed hours over"),
    # spatial/rules/restart.py RESTART_CLOSE_REASON: the monitor restarted before the rule cleared it
    "monitor_restarted": ("监测服务重启，告警中止", "Monitor restarted before the rule cleared it"),
    "back_in_corridor": ("回到核定路线", "Back on the route"), "waybill_changed": ("运单变更", "Waybill changed"),
    "waybill_ended": ("运单结束", "Waybill ended"),
    # speeding LIMIT_SOURCES, fatigue REST_KINDS
    "default": ("默认限速", "Default limit"), "road": ("道路限速", "Road limit"), "zone": ("区域限速", "Zone limit"),
    "stop": ("停车休息", "Stopped"), "gap": ("无数据间隔", "Gap in the data"),
    # spatial/rules/terminal_alarm.py ALARM_BIT_NAMES (JT/T 808 0x0200 alarm word)
    "sos": ("紧急报警", "SOS"), "overspeed": ("超速报警", "Overspeed"), "fatigue": ("疲劳驾驶报警", "Fatigue"),
    "danger_warning": ("危险预警", "Danger warning"), "gnss_fault": ("GNSS模块故障", "GNSS fault"),
    "gnss_antenna_open": ("GNSS天线未接或被剪断", "GNSS antenna open"),
    "gnss_antenna_short": ("GNSS天线短路", "GNSS antenna short"), "power_low": ("终端主电源欠压", "Power low"),
    "power_off": ("终端主电源掉电", "Power off"), "display_fault": ("显示器故障", "Display fault"),
    "tts_fault": ("TTS模块故障", "TTS fault"), "camera_fault": ("摄像头故障", "Camera fault"),
    "ic_card_fault": ("IC卡模块故障", "IC card fault"), "overspeed_warning": ("超速预警", "Overspeed warning"),
    "fatigue_warning": ("疲劳驾驶预警", "Fatigue warning"),
    "daily_driving_overtime": ("当天累计驾驶超时", "Daily driving overtime"),
    "parking_timeout": ("超时停车", "Parked too long"), "area_in_out": ("进出区域", "Area in/out"),
    "route_in_out": ("进出路线", "Route in/out"), "road_segment_time": ("路段行驶时间不足/过长", "Road segment time"),
    "route_deviation": ("路线偏离报警", "Route deviation"), "vss_fault": ("车辆VSS故障", "VSS fault"),
    "fuel_abnormal": ("车辆油量异常", "Fuel abnormal"), "stolen": ("车辆被盗", "Stolen"),
    "illegal_ignition": ("车辆非法点火", "Illegal ignition"), "illegal_move": ("车辆非法位移", "Illegal move"),
    "collision_warning": ("碰撞预警", "Collision warning"), "rollover_warning": ("侧翻预警", "Rollover warning"),
    "illegal_door_open": ("非法开门报警", "Door opened illegally"),
}


def evidence_label(key: str, language: str, rule: str | None = None) -> str:
    label = EVIDENCE_LABELS_BY_RULE.get((rule, key)) or EVIDENCE_LABELS.get(key)
    return text(label, language) if label else str(key)
