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
    "incident_action": {
        "opened": ("告警产生", "Opened"),
        "reopened": ("再次触发", "Reopened"),
        "updated": ("告警更新", "Updated"),
        "rule_closed": ("告警解除", "Rule cleared"),
        "pushed": ("推送", "Pushed"),
        "signed": ("签收", "Signed"),
        "disposed": ("处置", "Disposed"),
        "closed": ("办结", "Closed"),
        "supervised": ("督办", "Supervised"),
        "escalated": ("逾期上报", "Escalated"),
        "reminded": ("催办", "Reminded"),
        "upgraded": ("级别升高", "Level raised"),
        "routed": ("分派", "Routed"),
        "driver_text_requested": ("下发司机短信", "Text to the driver"),
        "driver_text_answered": ("终端应答短信", "Terminal answered the text"),
        "driver_confirm_answered": ("终端应答报警确认", "Terminal answered the alarm confirmation"),
    },
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

# The rules' names (spatial/rules/; the ticker, the incident panels and lists).
RULE_TITLES: dict[str, Text] = {
    "route_deviation": ("偏离核定路线", "Route deviation"),
    "speeding": ("超速", "Speeding"),
    "stop_near_sensitive_site": ("敏感场所附近停车", "Stop near a sensitive site"),
    "illegal_parking": ("违规停车", "Illegal parking"),
    "suspected_washing": ("疑似随意洗消", "Suspected tank washing"),
    "restricted_zone": ("驶入限行区域", "Restricted zone entered"),
    "fatigue": ("疲劳驾驶", "Fatigue"),
    "offline": ("终端离线", "Terminal offline"),
    "feed_outage": ("数据接入中断", "Feed outage"),
    "terminal_alarm": ("终端报警", "Terminal alarm"),
    "mixed_loading": ("混装", "Mixed loading"),
    "media_change_unwashed": ("未洗消换装", "Medium changed unwashed"),
    "unapproved_medium": ("装运非核准介质", "Unapproved medium"),
    "point_level": ("监测超限", "Level alarm"),
    "point_rate": ("变化过快", "Rate of change"),
    "point_stuck": ("读数不变", "Stuck reading"),
    "point_range": ("超出量程", "Out of range"),
    "point_interruption": ("数据中断", "Point silent"),
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
