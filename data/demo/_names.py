"""Plausible Chinese names for the demo world, drawn with a numpy Generator (vectorised)."""

from __future__ import annotations

import numpy as np

# Trade-name characters (字号); two of them make a firm's trade name.
_TRADE_CHARS = list(
    "恒泰华众利鑫永金海润德信安宏盛达隆兴祥和嘉瑞丰源通远明光新科创联合中天正宇博诚汇百顺万昌富"
    "凯旭晨腾飞龙宝奥环亚洲江甬东方北南西美佳益康欣荣晟辉浩锦诺威弘昊翔鼎"
)
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程魏苏吕丁任沈姚卢傅钟姜崔谭陆范汪石廖金")
# Surname frequencies fall off roughly geometrically.
_SURNAME_P = np.geomspace(1.0, 0.05, len(_SURNAMES))
_SURNAME_P /= _SURNAME_P.sum()
_GIVEN_CHARS = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌飞玲波辉鹏宇浩俊凯峰成林海云春兰雪梅")

_INDUSTRY = {
    "production": ["化工", "石化", "新材料", "化学", "精细化工", "合成材料", "涂料", "化学制品"],
    "use": ["塑料制品", "电子", "制药", "纺织印染", "电镀", "机械制造", "汽车零部件", "电池", "食品"],
    "trade": ["化工贸易", "化学品销售", "石油化工贸易", "能源", "化工物资", "燃气"],
    "transport": ["物流", "危险品运输", "化工物流", "汽车运输", "储运"],
    "disposal": ["环保科技", "固废处置", "环境服务", "危险废物处置"],
}


def combos(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct two-character trade names (wraps with a numeral suffix beyond the pool)."""
    k = len(_TRADE_CHARS)
    pool = k * k
    codes = rng.permutation(pool)[np.arange(n) % pool]
    rounds = np.arange(n) // pool
    chars = np.array(_TRADE_CHARS, dtype=object)
    names = chars[codes // k] + chars[codes % k]
    suffix = np.where(rounds > 0, np.char.mod("%d", rounds + 1).astype(object), "")
    return names + suffix


def firm_names(rng: np.random.Generator, categories: np.ndarray, town_names: np.ndarray) -> np.ndarray:
    """'宁波<town?><trade name><industry>有限公司' for licensed enterprises (names distinct)."""
    n = len(categories)
    trade = combos(rng, n)
    industry = np.empty(n, dtype=object)
    for category, words in _INDUSTRY.items():  # five categories
        mask = categories == category
        industry[mask] = np.array(words, dtype=object)[rng.integers(0, len(words), mask.sum())]
    with_town = rng.random(n) < 0.35
    prefix = np.where(rng.random(n) < 0.8, "宁波", "浙江")
    town = np.where(with_town, town_names, "")
    return prefix + town + trade + industry + "有限公司"


def unlicensed_names(rng: np.random.Generator, categories: np.ndarray, town_names: np.ndarray) -> np.ndarray:
    """Schools, hospitals and research institutes named after their town."""
    n = len(categories)
    trade = combos(rng, n)
    out = np.empty(n, dtype=object)
    kinds = {
        "school": ["中学", "小学", "实验学校", "职业高级中学", "外国语学校", "高级中学"],
        "hospital": ["人民医院", "中医院", "妇幼保健院", "卫生院", "社区卫生服务中心", "口腔医院"],
        "research": ["化学研究所", "检验检测中心", "新材料研究院", "疾病预防控制中心实验室", "工程技术研究院", "大学实验室"],
    }
    for category, words in kinds.items():
        mask = categories == category
        out[mask] = np.array(words, dtype=object)[rng.integers(0, len(words), mask.sum())]
    return "宁波市" + town_names + trade + out


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    surnames = np.array(_SURNAMES, dtype=object)[rng.choice(len(_SURNAMES), n, p=_SURNAME_P)]
    given = np.array(_GIVEN_CHARS, dtype=object)
    first = given[rng.integers(0, len(given), n)]
    second = np.where(rng.random(n) < 0.7, given[rng.integers(0, len(given), n)], "")
    return surnames + first + second


def numbered(prefix: str, n: int, width: int = 6) -> np.ndarray:
    """Stable ids 'PREFIX000001' …"""
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


_STREET_WORDS = list(
    "中山 解放 人民 江东 江北 百丈 灵桥 药行 开明 县前 环城 天童 兴宁 福明 宁穿 世纪 民安 通途 "
    "庄桥 育才 学士 四明 望春 丽园 段塘 鄞县 雅戈尔 东钱湖 天一 新河 泰康 钱湖 广德湖 前洋 "
    "长兴 甬江 明州 太白 鼓楼 彩虹 惊驾 樱花 沧海 联丰 薛家 江南 新城 新大 富强 文化".split()
)


def road_names(urban: np.ndarray, east_west: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Street names for town roads, county-road numbers for rural ones: collinear segments
    in the same band share a name, parallel ones differ."""
    words = np.array(_STREET_WORDS, dtype=object)
    street = words[(band * 7 + np.where(east_west, 0, 3)) % len(words)] + np.where(east_west, "路", "街")
    code = (band * 37 + np.where(east_west, 0, 451)) % 900 + 100
    county = "县道X" + np.char.mod("%03d", code).astype(object)
    return np.where(urban, street, county)
