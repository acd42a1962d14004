"""Mixed loading of dangerous goods on one vehicle: ADR 7.5.2.1 / 7.5.2.2 as data, and a
vectorised check of every pair of goods on a waybill (JT/T 617.6-2018 follows ADR).

A good's hazard class is written as on the waybill: the class or division, for class 1 the
compatibility group ("1.1D", "1.4S"), then any subsidiary labels after "+" ("4.1+1",
"5.2+1", "3+8", "6.1+3"). Label "9A" (lithium batteries, ADR's table row "9, 9A") counts as 9. Its *labels* are the ADR 7.5.2.1 table's columns: "4.1+1" and
"5.2+1" are columns of their own; other subsidiaries add their own column ("3+8" bears 3
and 8). Two goods conflict when any label of one with any label of the other is not
permitted:

- X: permitted;
- blank: forbidden;
- note a: permitted only with 1.4S (a division 1.4 good of another group, or of no stated
  group, may not travel with other classes);
- note b: class 1 with life-saving appliances of class 9 (UN2990, UN3072, UN3268);
- note c: 1.4G safety devices UN0503 with class 9 UN3268 (inside note b's set already);
- note d (ADR 2025 7.5.2.1, DOMAIN.md §3): blasting explosives other than UN0083 (explosive,
  blasting, type C) with ammonium nitrate (UN1942, UN2067), its emulsion/suspension/gel
  (UN3375), the alkali-metal nitrates (UN1451, 2722, 1486, 1477, 1498) and the alkaline-earth
  nitrates (UN1446, 2464, 1454, 1474, 1507). Only blasting explosives (BLASTING_EXPLOSIVES_UN):
  detonators and every other label-1 good stay forbidden with 5.1. The note permits the pair
  as a whole, so a nitrate's subsidiary label (beryllium nitrate, 5.1+6.1) does not undo it.
  `nitrate_explosives_only` is a stricter reading that is *not* ADR's: only the blasting
  explosives of types B and E (UN0082, 0241, 0331, 0332, those that hold ammonium nitrate);
- "7.5.2.2": two class 1 goods are governed by their compatibility groups (ADR 7.5.2.1
  NOTE 2), whatever their labels: COMPATIBILITY below. Conditional cells of that table
  need facts a waybill does not carry, so they count as conflicts naming the condition:
  B with D (only in separate approved compartments, 7.5.2.2 note a), N with N of another UN
  number (only when proven free of extra risk, note b), L only with the same UN number
  (note d). A class 1 good without a stated group conflicts with every other explosive.

Two lines with the same UN number never conflict (the same goods split in two lines).

The stricter 49 CFR 177.848 pairs (optional): a zone A poison-inhalation material (class
2.3, or 6.1 packing group I zone A; the UN numbers are a setting) not with labels 3, 4.x,
5.x, 8; cyanides not with acids (UN number sets, settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The columns of ADR 7.5.2.1's table, in its order.
LABELS = ("1", "1.4", "1.5", "1.6", "2", "3", "4.1", "4.1+1", "4.2", "4.3", "5.1", "5.2", "5.2+1",
          "6.1", "6.2", "7", "8", "9")
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
EXPLOSIVE_LABELS = frozenset({"1", "1.4", "1.5", "1.6"})

X, FORBIDDEN, NOTE_A, NOTE_B, NOTE_ABC, NOTE_D, CLASS1 = "X", "", "a", "b", "abc", "d", "7.5.2.2"

# ADR 7.5.2.1, row by row (upper triangle written out in full; the table is symmetric).
_OTHER = ("2", "3", "4.1", "4.2", "4.3", "5.1", "5.2", "6.1", "6.2", "7", "8", "9")


def _build_table() -> np.ndarray:
    n = len(LABELS)
    table = np.full((n, n), FORBIDDEN, dtype=object)

    def put(a: str, b: str, value: str) -> None:
        table[LABEL_INDEX[a], LABEL_INDEX[b]] = value
        table[LABEL_INDEX[b], LABEL_INDEX[a]] = value

    for a in EXPLOSIVE_LABELS:
        for b in EXPLOSIVE_LABELS:
            put(a, b, CLASS1)
    for other in _OTHER:  # 1.4 with every other class but 4.1+1 and 5.2+1: note a (1.4S only)
        put("1.4", other, NOTE_A)
    put("1.4", "9", NOTE_ABC)
    for explosive in ("1", "1.5", "1.6"):
        put(explosive, "9", NOTE_B)
    put("1", "5.1", NOTE_D)
    for a in _OTHER:
        for b in _OTHER:
            put(a, b, X)
    put("4.1+1", "4.1+1", X)
    put("5.2", "5.2+1", X)
    put("5.2+1", "5.2+1", X)
    return table


ADR_TABLE = _build_table()

# ADR 7.5.2.2: the compatibility groups each group may travel with ("a"/"b"/"d": the
# conditional cells, see the module docstring).
GROUPS = "ABCDEFGHJLNS"
COMPATIBILITY: dict[str, dict[str, str]] = {
    "A": {"A": X},
    "B": {"B": X, "D": "a", "S": X},
    "C": {"C": X, "D": X, "E": X, "G": X, "N": X, "S": X},
    "D": {"B": "a", "C": X, "D": X, "E": X, "G": X, "N": X, "S": X},
    "E": {"C": X, "D": X, "E": X, "G": X, "N": X, "S": X},
    "F": {"F": X, "S": X},
    "G": {"C": X, "D": X, "E": X, "G": X, "S": X},
    "H": {"H": X, "S": X},
    "J": {"J": X, "S": X},
    "L": {"L": "d"},
    "N": {"C": X, "D": X, "E": X, "N": "b", "S": X},
    "S": {"B": X, "C": X, "D": X, "E": X, "F": X, "G": X, "H": X, "J": X, "N": X, "S": X},
}

LIFE_SAVING_UN = frozenset({"2990", "3072", "3268"})  # ADR 7.5.2.1 note b
NOTE_C_PAIR = ("0503", "3268")  # ADR 7.5.2.1 note c
# ADR 2025 7.5.2.1 note d, DOMAIN.md §3: ammonium nitrate and its emulsions, the alkali-metal
# nitrates (Cs, Li, K, Rb, Na) and the alkaline-earth nitrates (Ba, Be, Ca, Mg, Sr).
NITRATES_UN = frozenset({"1942", "2067", "3375", "1451", "2722", "1486", "1477", "1498",
                         "1446", "2464", "1454", "1474", "1507"})
# Note d's explosive side: explosive, blasting, types A (0081), B (0082, 0331), D (0084) and
# E (0241, 0332); type C (0083) is excluded by name, detonators are no blasting explosive.
BLASTING_EXPLOSIVES_UN = frozenset({"0081", "0082", "0084", "0241", "0331", "0332"})
# Not ADR's: a stricter engineering reading (types B and E only, which hold ammonium nitrate).
NITRATE_EXPLOSIVES_UN = frozenset({"0082", "0241", "0331", "0332"})

# 49 CFR 177.848 (optional): which UN numbers the stricter pairs name. Zone A: 49 CFR 172.101
# special provision 1 (hazard zone A) for the common gases and 6.1 PG I liquids; cyanides and
# acids: the usual inorganic cyanides and their solutions, the common mineral and organic acids.
ZONE_A_UN = ("1051", "1067", "1076", "1589", "2188", "2199")
CYANIDES_UN = ("1051", "1565", "1575", "1588", "1613", "1614", "1680", "1689", "1935", "3413", "3414")
ACIDS_UN = ("1050", "1052", "1779", "1789", "1790", "1805", "1830", "1831", "1832", "2031", "2032",
            "2789", "2796", "3264", "3265")
CFR_ZONE_A_PARTNER_LABELS = frozenset({"3", "4.1", "4.1+1", "4.2", "4.3", "5.1", "5.2", "5.2+1", "8"})

CLAUSE_ADR_TABLE = "ADR 7.5.2.1"
CLAUSE_ADR_GROUPS = "ADR 7.5.2.2"
CLAUSE_CFR_ZONE_A = "49 CFR 177.848 (zone A)"
CLAUSE_CFR_CYANIDE = "49 CFR 177.848 (cyanides with acids)"

_CLASS_RE = re.compile(r"^(?:1\.[1-6][A-HJLNS]?|1|2(?:\.[123])?|3|4\.[123]|5\.[12]|6\.[12]|7[ABCE]?|8|9A?)$")


@dataclass(frozen=True)
class GoodLabels:
    """A parsed hazard class: its ADR table labels, class-1 division and compatibility group."""

    labels: tuple[str, ...]
    division: str  # '1.1'…'1.6' for class 1, '' otherwise
    group: str  # compatibility group letter, '' when not class 1 or not stated


def parse_hazard_class(text: str) -> GoodLabels:
    """'1.1D' -> labels ('1',), division '1.1', group 'D'; '4.1+1' -> ('4.1+1',); '3+8' -> ('3', '8').
    Raises ValueError naming the text when it is not a class ADR knows."""
    raw = str(text).strip().upper().replace(" ", "")
    parts = raw.split("+")
    if not raw or not all(_CLASS_RE.match(p) for p in parts):
        raise ValueError(f"hazard class {text!r} is not a dangerous-goods class (e.g. '3', '1.1D', '4.1+1')")
    primary, subsidiary = parts[0], parts[1:]
    division = group = ""
    if primary.startswith("1"):
        division = primary[:3] if len(primary) >= 3 else ""
        group = primary[3:] if len(primary) > 3 else ""
        if subsidiary:
            raise ValueError(f"hazard class {text!r}: an explosive takes no subsidiary label here")
    first = _label(primary)
    labels = [first]
    for sub in subsidiary:
        if sub == "1" and first in ("4.1", "5.2"):
            labels[0] = f"{first}+1"  # the table's own columns
        elif sub.startswith("1"):
            raise ValueError(f"hazard class {text!r}: an explosive subsidiary only exists for 4.1 and 5.2")
        else:
            labels.append(_label(sub))
    return GoodLabels(tuple(dict.fromkeys(labels)), division, group)


def _label(part: str) -> str:
    if part.startswith("1"):
        return {"1.4": "1.4", "1.5": "1.5", "1.6": "1.6"}.get(part[:3], "1")
    if part.startswith(("2", "7", "9")):  # 2.x, 7A-7E and 9A share their class's column
        return part[0]
    return part


def _un(values) -> np.ndarray:
    """UN numbers as 4-digit strings ('81' -> '0081', 'UN1203' -> '1203')."""
    out = pd.Series(values, dtype=object).astype(str).str.strip().str.upper().str.removeprefix("UN")
    return out.str.zfill(4).to_numpy(dtype=object)


@dataclass(frozen=True)
class SegregationOptions:
    nitrate_explosives_only: bool = False
    cfr_177_848: bool = False
    zone_a_un: tuple[str, ...] = ZONE_A_UN
    cyanides_un: tuple[str, ...] = CYANIDES_UN
    acids_un: tuple[str, ...] = ACIDS_UN


CONFLICT_COLUMNS = ("waybill_id", "seq_a", "seq_b", "un_a", "un_b", "class_a", "class_b", "label_a", "label_b",
                    "clause", "note", "explosive")


def pair_conflicts(goods: pd.DataFrame, options: SegregationOptions = SegregationOptions()) -> pd.DataFrame:
    """Every forbidden pair of goods on the same waybill, one row per pair and reason.

    `goods`: waybill_goods rows (waybill_id, seq, un_number, hazard_class). Returns
    CONFLICT_COLUMNS: the two lines (seq, UN number, class), the labels that clash, the clause
    ('ADR 7.5.2.1', 'ADR 7.5.2.2', '49 CFR 177.848 …'), its note ('' when the cell is blank)
    and whether an explosive is involved. Vectorised over the (good, label) pairs.
    """
    missing = {"waybill_id", "seq", "un_number", "hazard_class"} - set(goods.columns)
    if missing:
        raise ValueError(f"waybill goods lack columns {sorted(missing)}")
    if not len(goods):
        return _empty_conflicts()
    classes = goods["hazard_class"].astype(str).to_numpy(dtype=object)
    parsed = {}
    for text in pd.unique(classes):  # a few dozen distinct classes, not one per row
        try:
            parsed[text] = parse_hazard_class(text)
        except ValueError as err:
            bad = goods.loc[classes == text, "waybill_id"].astype(str).unique()[:5]
            raise ValueError(f"{err} (waybills {', '.join(bad)})") from None
    g = pd.DataFrame({
        "waybill_id": goods["waybill_id"].astype(str).to_numpy(dtype=object),
        "seq": pd.to_numeric(goods["seq"]).to_numpy("int64"),
        "un": _un(goods["un_number"]),
        "cls": classes,
    })
    g["good"] = np.arange(len(g))
    g["group"] = [parsed[c].group for c in g["cls"]]
    # one row per (good, label)
    labels = g[["good", "cls"]].assign(label=[list(parsed[c].labels) for c in g["cls"]]).explode("label")
    gl = g.merge(labels[["good", "label"]], on="good")
    pairs = gl.merge(gl, on="waybill_id", suffixes=("_a", "_b"))
    pairs = pairs[(pairs["good_a"] < pairs["good_b"]) & (pairs["un_a"] != pairs["un_b"])].reset_index(drop=True)
    if not len(pairs):
        return _empty_conflicts()
    la = pairs["label_a"].map(LABEL_INDEX).to_numpy("int64")
    lb = pairs["label_b"].map(LABEL_INDEX).to_numpy("int64")
    cell = ADR_TABLE[la, lb]
    un_a, un_b = pairs["un_a"].to_numpy(dtype=object), pairs["un_b"].to_numpy(dtype=object)
    grp_a, grp_b = pairs["group_a"].to_numpy(dtype=object), pairs["group_b"].to_numpy(dtype=object)
    lab_a, lab_b = pairs["label_a"].to_numpy(dtype=object), pairs["label_b"].to_numpy(dtype=object)
    expl_a, expl_b = np.isin(lab_a, list(EXPLOSIVE_LABELS)), np.isin(lab_b, list(EXPLOSIVE_LABELS))

    allowed = cell == X
    # note a: the 1.4 side must be 1.4S
    s_side = np.where(lab_a == "1.4", grp_a, grp_b) == "S"
    allowed |= ((cell == NOTE_A) | (cell == NOTE_ABC)) & s_side
    # note b (and c, whose pair lies inside b's set): class 1 with class 9 life-saving appliances
    nine_un = np.where(lab_a == "9", un_a, un_b)
    allowed |= ((cell == NOTE_B) | (cell == NOTE_ABC)) & np.isin(nine_un, list(LIFE_SAVING_UN))
    # note d (the table's label-1 row): a blasting explosive (not UN0083) with a note-d nitrate.
    # The note permits the two goods together, so every label pair of those two lines is
    # allowed (beryllium nitrate, 5.1+6.1, keeps its 6.1 label)
    explosive_un = np.where(lab_a == "1", un_a, un_b)
    nitrate_un = np.where(lab_a == "1", un_b, un_a)
    blasting = NITRATE_EXPLOSIVES_UN if options.nitrate_explosives_only else BLASTING_EXPLOSIVES_UN
    d_ok = (cell == NOTE_D) & np.isin(explosive_un, list(blasting)) & np.isin(nitrate_un, list(NITRATES_UN))
    allowed |= pd.Series(d_ok).groupby([pairs["good_a"].to_numpy(), pairs["good_b"].to_numpy()]).transform("any") \
        .to_numpy(bool)
    # 7.5.2.2: two explosives, by compatibility group
    group_cell = np.array([COMPATIBILITY.get(a, {}).get(b, FORBIDDEN) for a, b in zip(grp_a, grp_b)], dtype=object)
    is_class1 = cell == CLASS1
    allowed |= is_class1 & (group_cell == X)

    adr_clause = np.where(is_class1, CLAUSE_ADR_GROUPS, CLAUSE_ADR_TABLE)
    unstated = is_class1 & ((grp_a == "") | (grp_b == ""))
    adr_note = np.where(is_class1, np.where(unstated, "compatibility group not stated", group_cell), cell)
    out = [pd.DataFrame({
        "waybill_id": pairs["waybill_id"].to_numpy(dtype=object)[~allowed],
        "seq_a": pairs["seq_a"].to_numpy("int64")[~allowed], "seq_b": pairs["seq_b"].to_numpy("int64")[~allowed],
        "un_a": un_a[~allowed], "un_b": un_b[~allowed],
        "class_a": pairs["cls_a"].to_numpy(dtype=object)[~allowed],
        "class_b": pairs["cls_b"].to_numpy(dtype=object)[~allowed],
        "label_a": lab_a[~allowed], "label_b": lab_b[~allowed],
        "clause": adr_clause[~allowed], "note": adr_note[~allowed].astype(object),
        "explosive": (expl_a | expl_b)[~allowed],
    })]
    if options.cfr_177_848:
        cls_a = pairs["cls_a"].str.split("+").str[0].to_numpy(dtype=object)
        cls_b = pairs["cls_b"].str.split("+").str[0].to_numpy(dtype=object)
        zone_a = np.isin(un_a, list(options.zone_a_un)) & np.isin(cls_a, ["2.3", "6.1"])
        zone_b = np.isin(un_b, list(options.zone_a_un)) & np.isin(cls_b, ["2.3", "6.1"])
        partners = list(CFR_ZONE_A_PARTNER_LABELS)
        zone = (zone_a & np.isin(lab_b, partners)) | (zone_b & np.isin(lab_a, partners))
        cyan = list(options.cyanides_un)
        acid = list(options.acids_un)
        cyanide = ((np.isin(un_a, cyan) & np.isin(un_b, acid)) | (np.isin(un_b, cyan) & np.isin(un_a, acid)))
        for hit, clause in ((zone & allowed, CLAUSE_CFR_ZONE_A), (cyanide & allowed, CLAUSE_CFR_CYANIDE)):
            if hit.any():
                out.append(pd.DataFrame({
                    "waybill_id": pairs["waybill_id"].to_numpy(dtype=object)[hit],
                    "seq_a": pairs["seq_a"].to_numpy("int64")[hit], "seq_b": pairs["seq_b"].to_numpy("int64")[hit],
                    "un_a": un_a[hit], "un_b": un_b[hit],
                    "class_a": pairs["cls_a"].to_numpy(dtype=object)[hit],
                    "class_b": pairs["cls_b"].to_numpy(dtype=object)[hit],
                    "label_a": lab_a[hit], "label_b": lab_b[hit], "clause": clause, "note": "",
                    "explosive": (expl_a | expl_b)[hit],
                }))
    result = pd.concat(out, ignore_index=True)
    # one row per (pair of lines, clause, labels); a pair allowed by the ADR but caught by
    # both CFR tests keeps both reasons
    result = result.drop_duplicates(["waybill_id", "seq_a", "seq_b", "label_a", "label_b", "clause"])
    return result.sort_values(["waybill_id", "seq_a", "seq_b", "clause", "label_a", "label_b"],
                              ignore_index=True)[list(CONFLICT_COLUMNS)]


def _empty_conflicts() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c.startswith("seq") else ("bool" if c == "explosive" else object))
                         for c in CONFLICT_COLUMNS})


def conflicts_between(class_a: str, un_a: str, class_b: str, un_b: str,
                      options: SegregationOptions = SegregationOptions()) -> pd.DataFrame:
    """The conflicts of one pair of goods (a convenience over `pair_conflicts`)."""
    goods = pd.DataFrame({"waybill_id": ["pair", "pair"], "seq": [1, 2], "un_number": [un_a, un_b],
                          "hazard_class": [class_a, class_b]})
    return pair_conflicts(goods, options)
