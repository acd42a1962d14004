"""GB 18218-2018 identification and grading, against cases worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial.grading import (
    alpha_for_people,
    beta_for,
    grade_for_r,
    grade_sources,
    grading_tables,
    r_value,
    s_value,
)

# A tiny catalogue with the GB 18218 figures of DOMAIN.md §2 (Q in t, β).
CATALOGUE = pd.DataFrame(
    {
        "un_number": ["1017", "1005", "1203", "1076", "1230", "9999"],
        "name_en": ["chlorine", "ammonia", "gasoline", "phosgene", "methanol", "no GB 18218 entry"],
        "gb18218_q_t": [5.0, 10.0, 200.0, 0.3, 500.0, np.nan],
        "gb18218_beta": [4.0, 2.0, 1.5, 20.0, 1.5, np.nan],
    }
).set_index("un_number")


@pytest.mark.parametrize(
    "people, alpha",
    [
        (0, 0.5),  # nobody: 0.5
        (1, 1.0),  # 1–29: 1.0
        (29, 1.0),
        (30, 1.2),  # 30–49: 1.2
        (49, 1.2),
        (50, 1.5),  # 50–99: 1.5
        (99, 1.5),
        (100, 2.0),  # ≥ 100: 2.0
        (25_000, 2.0),
    ],
)
def test_alpha_band_edges(people, alpha):
    assert alpha_for_people(people) == alpha


def test_alpha_vectorised_and_bad_input():
    np.testing.assert_array_equal(alpha_for_people(np.array([0, 1, 30, 50, 100])), [0.5, 1.0, 1.2, 1.5, 2.0])
    with pytest.raises(ValueError, match="people_500m"):
        alpha_for_people([-1, 5])


@pytest.mark.parametrize(
    "r, grade",
    [
        (0.0, 4),
        (9.999, 4),  # R < 10: grade 4
        (10.0, 3),  # 10 ≤ R < 50: grade 3
        (49.999, 3),
        (50.0, 2),  # 50 ≤ R < 100: grade 2
        (99.999, 2),
        (100.0, 1),  # R ≥ 100: grade 1
        (1e6, 1),
    ],
)
def test_grade_edges(r, grade):
    assert grade_for_r(r) == grade


def test_grade_vectorised_and_bad_input():
    np.testing.assert_array_equal(grade_for_r([5, 10, 50, 100]), [4, 3, 2, 1])
    with pytest.raises(ValueError, match="R must be"):
        grade_for_r([np.nan])


def test_beta_from_catalogue():
    np.testing.assert_array_equal(beta_for(["1017", "1005", "1076"], CATALOGUE), [4.0, 2.0, 20.0])
    assert beta_for("1203", CATALOGUE) == 1.5
    with pytest.raises(ValueError, match="not in the chemical catalogue"):
        beta_for(["1017", "0000"], CATALOGUE)
    with pytest.raises(ValueError, match="no GB 18218 β"):
        beta_for(["9999"], CATALOGUE)


def test_chlorine_and_ammonia_worked_example():
    # 20 t chlorine (Q 5, β 4) + 100 t ammonia (Q 10, β 2), 120 people within 500 m:
    #   S = 20/5 + 100/10 = 4 + 10 = 14            -> a major hazard source
    #   α = 2.0 (≥ 100 people)
    #   R = 2.0 · (4·4 + 2·10) = 2.0 · 36 = 72     -> 50 ≤ R < 100: grade 2
    q, Q, beta = [20.0, 100.0], [5.0, 10.0], [4.0, 2.0]
    assert s_value(q, Q) == pytest.approx(14.0)
    alpha = alpha_for_people(120)
    assert alpha == 2.0
    r = r_value(alpha, beta, q, Q)
    assert r == pytest.approx(72.0)
    assert grade_for_r(r) == 2


def test_gasoline_depot_worked_example():
    # 300 t gasoline (Q 200, β 1.5), 40 people:
    #   S = 300/200 = 1.5, α = 1.2, R = 1.2 · 1.5 · 1.5 = 2.7 -> grade 4
    assert s_value([300.0], [200.0]) == pytest.approx(1.5)
    r = r_value(alpha_for_people(40), [1.5], [300.0], [200.0])
    assert r == pytest.approx(2.7)
    assert grade_for_r(r) == 4


def test_phosgene_worked_example():
    # 1.5 t phosgene (Q 0.3, β 20), nobody around:
    #   S = 5, α = 0.5, R = 0.5 · 20 · 5 = 50 -> exactly on the grade-2 edge
    r = r_value(alpha_for_people(0), [20.0], [1.5], [0.3])
    assert r == pytest.approx(50.0)
    assert grade_for_r(r) == 2


def test_s_and_r_reject_bad_quantities():
    with pytest.raises(ValueError, match="Q_t"):
        s_value([1.0], [0.0])
    with pytest.raises(ValueError, match="q_t"):
        s_value([-1.0], [5.0])
    with pytest.raises(ValueError, match="β"):
        r_value(1.0, [0.0], [1.0], [5.0])


def test_grade_sources_table():
    sources = pd.DataFrame({"id": ["HS-1", "HS-2", "HS-3"], "people_500m": [120, 40, 0]}, index=[10, 11, 12])
    chems = pd.DataFrame(
        {
            # HS-2 listed first and HS-1 split around it: order must not matter.
            "hazard_source_id": ["HS-1", "HS-2", "HS-1", "HS-3"],
            "un_number": ["1017", "1203", "1005", "1076"],
            "quantity_t": [20.0, 300.0, 100.0, 1.5],
        }
    )
    graded = grade_sources(sources, chems, CATALOGUE)
    assert list(graded.index) == [10, 11, 12]
    # HS-1: the chlorine + ammonia example (S 14, R 72, grade 2); HS-2: gasoline (S 1.5,
    # R 2.7, grade 4); HS-3: phosgene (S 5, R 50, grade 2).
    np.testing.assert_allclose(graded["s_value"], [14.0, 1.5, 5.0])
    np.testing.assert_allclose(graded["r_value"], [72.0, 2.7, 50.0])
    np.testing.assert_allclose(graded["alpha"], [2.0, 1.2, 0.5])
    assert graded["grade"].tolist() == [2, 4, 2]


def test_grade_sources_matches_scalar_functions_on_random_tables():
    rng = np.random.default_rng(7)
    n = 200
    sources = pd.DataFrame({"id": [f"HS-{i}" for i in range(n)], "people_500m": rng.integers(0, 300, n)})
    rows = rng.integers(1, 5, n)
    chems = pd.DataFrame(
        {
            "hazard_source_id": np.repeat(sources["id"].to_numpy(), rows),
            "un_number": rng.choice(["1017", "1005", "1203", "1076", "1230"], rows.sum()),
            "quantity_t": rng.uniform(0.01, 400.0, rows.sum()),
        }
    )
    graded = grade_sources(sources, chems, CATALOGUE)
    for i in rng.choice(n, 20, replace=False):
        own = chems[chems["hazard_source_id"] == sources["id"][i]]
        Q = CATALOGUE.loc[own["un_number"], "gb18218_q_t"].to_numpy()
        beta = CATALOGUE.loc[own["un_number"], "gb18218_beta"].to_numpy()
        alpha = alpha_for_people(sources["people_500m"][i])
        assert graded["s_value"][i] == pytest.approx(s_value(own["quantity_t"], Q))
        r = r_value(alpha, beta, own["quantity_t"], Q)
        assert graded["r_value"][i] == pytest.approx(r)
        assert graded["grade"][i] == grade_for_r(r)


def test_grade_sources_rejects_incomplete_input():
    sources = pd.DataFrame({"id": ["HS-1", "HS-2"], "people_500m": [10, 10]})
    one = pd.DataFrame({"hazard_source_id": ["HS-1"], "un_number": ["1017"], "quantity_t": [10.0]})
    with pytest.raises(ValueError, match="without chemicals"):
        grade_sources(sources, one, CATALOGUE)
    stray = pd.DataFrame({"hazard_source_id": ["HS-9"], "un_number": ["1017"], "quantity_t": [10.0]})
    with pytest.raises(ValueError, match="unknown hazard sources"):
        grade_sources(sources, stray, CATALOGUE)
    no_q = pd.DataFrame({"hazard_source_id": ["HS-1", "HS-2"], "un_number": ["9999", "1017"], "quantity_t": [1.0, 9.0]})
    with pytest.raises(ValueError, match="critical quantity"):
        grade_sources(sources, no_q, CATALOGUE)


def test_tables_cite_gb18218_table_5_for_alpha_and_table_6_for_grades():
    # DOMAIN.md §2: α is GB 18218-2018 table 5, the grades table 6 (tables 3 and 4 are β)
    rows = grading_tables()
    alpha = [r for r in rows if r["table"] == "alpha"]
    grades = [r for r in rows if r["table"] == "grade"]
    assert {r["source"] for r in alpha} == {"GB 18218-2018 table 5"}
    assert {r["source"] for r in grades} == {"GB 18218-2018 table 6"}
    assert [(r["band"], r["value"]) for r in alpha] == [
        ("100+ people within 500 m", 2.0), ("50-99 people within 500 m", 1.5), ("30-49 people within 500 m", 1.2),
        ("1-29 people within 500 m", 1.0), ("0 people within 500 m", 0.5)]
    assert [(r["band"], r["value"]) for r in grades] == [
        ("R >= 100", 1), ("50 <= R < 100", 2), ("10 <= R < 50", 3), ("R < 10", 4)]
    # the printed bands are the ones the functions apply
    for r in alpha:
        assert alpha_for_people(int(r["band"].split("+")[0].split("-")[0].split()[0])) == r["value"]
