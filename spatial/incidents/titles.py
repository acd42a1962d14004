"""What each incident action is called, (Chinese, English): one place for the wall (the incident
panels, the history, the lists: layers/labels.py) and the messages the channels send
(data/channels/webhook.py: an SMS names the event as the officers' screens do), which may not
import the screen's labels."""

from __future__ import annotations

ACTION_TITLES: dict[str, tuple[str, str]] = {
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
}
