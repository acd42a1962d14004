"""Texts of the screen's chrome (title, panel, switches), Chinese first. Layer, field and value
labels live with the layers (layers/labels.py, layers/style.py)."""

from __future__ import annotations

from layers.style import LANGUAGES, Text, text

UI: dict[str, Text] = {
    "title": ("宁波市危险化学品安全风险一张图", "Ningbo Hazardous Chemicals Safety Map"),
    "subtitle": ("危化品安全监管指挥中心", "Hazmat safety command centre"),
    "legend": ("图例", "Legend"),
    "close": ("关闭", "Close"),
    "not_found": ("该要素已不在当前数据中，请刷新页面。", "This feature is no longer in the data: reload the page."),
    "switch_to": ("English", "中文"),
    "time_zone": ("北京时间", "Beijing time"),
    # the link to the server, said in the header (assets/hazmap_wall.js): polls failing, then back
    "link_down": ("连接中断，正在重连", "Connection lost, reconnecting"),
    "link_back": ("已重新连接并同步", "Reconnected and resynced"),
}

COUNTED_LAYERS = ("entities", "hazard_sources", "monitoring_points", "vehicles")


def ui(key: str, language: str) -> str:
    return text(UI[key], language)


def other_language(language: str) -> str:
    return LANGUAGES[(LANGUAGES.index(language) + 1) % len(LANGUAGES)]  # type: ignore[arg-type]
