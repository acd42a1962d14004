"""Each rule's name as people read it, (Chinese, English): one place for the wall (the ticker,
the incident panels and lists: layers/labels.py) and the messages the channels send
(data/channels), which may not import the screen's labels."""

from __future__ import annotations

RULE_TITLES: dict[str, tuple[str, str]] = {
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

