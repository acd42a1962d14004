"""Major hazard source identification and grading (GB 18218-2018).

A unit holding dangerous chemicals is a major hazard source when S = Σ qᵢ/Qᵢ ≥ 1 (qᵢ the
actual or design quantity in tonnes, Qᵢ the critical quantity of the substance). Its grade
follows from R = α · Σ βᵢ · qᵢ/Qᵢ, with α set by the people living within 500 m outside
the plant and βᵢ the substance's correction factor.

Everything here takes and returns numpy arrays (scalars work too); `grade_sources` grades a
whole table of sources from their chemicals in one groupby.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Σ q/Q at or above which a unit is a major hazard source (GB 18218-2018 §4.1).
MAJOR_HAZARD_MIN_S = 1.0

# Where each table comes from (DOMAIN.md §2): β of the named toxic gases is table 3, β by
# hazard category table 4 (both in the chemical catalogue), α table 5, the grades table 6.
ALPHA_SOURCE = "GB 18218-2018 table 5"
GRADE_SOURCE = "GB 18218-2018 table 6"

# α by people within 500 m outside the plant (GB 18218-2018 table 5): lower bound of each
# band, highest first, and its α; 0 people -> 0.5.
ALPHA_BANDS: tuple[tuple[int, float], ...] = ((100, 2.0), (50, 1.5), (30, 1.2), (1, 1.0), (0, 0.5))

# Lower bound of R for grades 1, 2, 3 (GB 18218-2018 table 6); below the last: grade 4.
GRADE_R_BOUNDS: tuple[tuple[float, int], ...] = ((100.0, 1), (50.0, 2), (10.0, 3))
LOWEST_GRADE = 4


def grading_tables() -> list[dict]:
    """The α bands and the grade bounds as rows (table, band, value, source), for printing
    beside the chemical catalogue."""
    rows = []
    upper = None
    for lower, alpha in ALPHA_BANDS:
        band = f"{lower}+" if upper is None else f"{lower}" if lower == upper - 1 else f"{lower}-{upper - 1}"
        rows.append({"table": "alpha", "band": f"{band} people within 500 m", "value": alpha, "source": ALPHA_SOURCE})
        upper = lower
    upper = None
    for lower, grade in GRADE_R_BOUNDS:
        band = f"R >= {lower:g}" if upper is None else f"{lower:g} <= R < {upper:g}"
        rows.append({"table": "grade", "band": band, "value": grade, "source": GRADE_SOURCE})
        upper = lower
    rows.append({"table": "grade", "band": f"R < {upper:g}", "value": LOWEST_GRADE, "source": GRADE_SOURCE})
    return rows


def alpha_for_people(people_500m):
    """α for the number of people within 500 m (int or array of ints, ≥ 0)."""
    people = np.asarray(people_500m, dtype="float64")
    bad = ~np.isfinite(people) | (people < 0)
    if bad.any():
        raise ValueError(f"people_500m must be finite and ≥ 0, got {people[bad][:5].tolist()}")
    conditions = [people >= lower for lower, _ in ALPHA_BANDS]
    alpha = np.select(conditions, [a for _, a in ALPHA_BANDS], default=np.nan).astype("float64")
    return alpha.item() if alpha.ndim == 0 else alpha


def beta_for(un_numbers, chemicals: pd.DataFrame):
    """β of each UN number from the chemical catalogue's `gb18218_beta` column (indexed by
    un_number). Unknown UN numbers or substances without a β raise a ValueError."""
    un = np.asarray(un_numbers, dtype=object)
    flat = un.reshape(-1)
    if "gb18218_beta" not in chemicals.columns:
        raise ValueError("chemical catalogue has no gb18218_beta column")
    missing = pd.Index(flat).difference(chemicals.index)
    if len(missing):
        raise ValueError(f"UN numbers not in the chemical catalogue: {sorted(map(str, missing))[:10]}")
    beta = chemicals["gb18218_beta"].reindex(flat).to_numpy(dtype="float64")
    if np.isnan(beta).any():
        raise ValueError(f"no GB 18218 β for UN numbers: {sorted(set(flat[np.isnan(beta)]))[:10]}")
    beta = beta.reshape(un.shape)
    return beta.item() if beta.ndim == 0 else beta


def _ratios(q_t, Q_t) -> np.ndarray:
    q = np.asarray(q_t, dtype="float64")
    Q = np.asarray(Q_t, dtype="float64")
    if np.any(~np.isfinite(Q)) or np.any(Q <= 0):
        raise ValueError("critical quantities Q_t must be finite and > 0")
    if np.any(~np.isfinite(q)) or np.any(q < 0):
        raise ValueError("quantities q_t must be finite and ≥ 0")
    return q / Q


def s_value(q_t, Q_t) -> float:
    """S = Σ qᵢ/Qᵢ over the substances of one unit."""
    return float(np.sum(_ratios(q_t, Q_t)))


def r_value(alpha, beta, q_t, Q_t) -> float:
    """R = α · Σ βᵢ · qᵢ/Qᵢ over the substances of one unit."""
    beta = np.asarray(beta, dtype="float64")
    if np.any(~np.isfinite(beta)) or np.any(beta <= 0):
        raise ValueError("β must be finite and > 0")
    return float(alpha) * float(np.sum(beta * _ratios(q_t, Q_t)))


def grade_for_r(r):
    """Grade 1 (R ≥ 100) … 4 (R < 10) for R (scalar or array)."""
    r = np.asarray(r, dtype="float64")
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError("R must be finite and ≥ 0")
    grade = np.select([r >= lower for lower, _ in GRADE_R_BOUNDS], [g for _, g in GRADE_R_BOUNDS], default=LOWEST_GRADE)
    grade = grade.astype("int64")
    return int(grade) if grade.ndim == 0 else grade


def grade_sources(sources: pd.DataFrame, source_chemicals: pd.DataFrame, chemicals: pd.DataFrame) -> pd.DataFrame:
    """Grade a table of units.

    `sources`: columns `id`, `people_500m`; `source_chemicals`: `hazard_source_id`,
    `un_number`, `quantity_t`; `chemicals`: the catalogue indexed by UN number with
    `gb18218_q_t` and `gb18218_beta`. Returns a frame indexed like `sources` (same order)
    with `alpha`, `s_value`, `r_value`, `grade`. A source without chemicals, or a chemical
    without a critical quantity, raises a ValueError.
    """
    for frame, name, cols in (
        (sources, "sources", ("id", "people_500m")),
        (source_chemicals, "source_chemicals", ("hazard_source_id", "un_number", "quantity_t")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    if "gb18218_q_t" not in chemicals.columns:
        raise ValueError("chemical catalogue has no gb18218_q_t column")
    unknown_sources = pd.Index(source_chemicals["hazard_source_id"]).difference(pd.Index(sources["id"]))
    if len(unknown_sources):
        raise ValueError(f"chemicals of unknown hazard sources: {list(unknown_sources[:5])}")

    un = source_chemicals["un_number"].to_numpy(dtype=object)
    Q = chemicals["gb18218_q_t"].reindex(un).to_numpy(dtype="float64") if len(un) else np.empty(0)
    if np.isnan(Q).any():
        raise ValueError(f"no GB 18218 critical quantity for UN numbers: {sorted(set(un[np.isnan(Q)]))[:10]}")
    ratio = _ratios(source_chemicals["quantity_t"].to_numpy(dtype="float64"), Q)
    beta = np.asarray(beta_for(un, chemicals), dtype="float64").reshape(-1)
    sums = (
        pd.DataFrame({"id": source_chemicals["hazard_source_id"].to_numpy(), "s": ratio, "bs": beta * ratio})
        .groupby("id", sort=False)[["s", "bs"]]
        .sum()
        .reindex(sources["id"].to_numpy())
    )
    if sums["s"].isna().any():
        raise ValueError(f"hazard sources without chemicals: {list(sums.index[sums['s'].isna()][:5])}")
    alpha = np.asarray(alpha_for_people(sources["people_500m"].to_numpy()), dtype="float64").reshape(-1)
    r = alpha * sums["bs"].to_numpy()
    return pd.DataFrame(
        {
            "alpha": alpha,
            "s_value": sums["s"].to_numpy(),
            "r_value": r,
            "grade": np.asarray(grade_for_r(r), dtype="int64").reshape(-1),
        },
        index=sources.index,
    )
