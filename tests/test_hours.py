"""Tastes for leisure fitted to UCI Adult's weekly hours (`experiments/configs/adult_hours.yaml`),
measured on a census sample the fit did not use, with psi and the fixed costs calibrated jointly."""

import pytest

from llm_economist.config import EconomyConfig
from llm_economist.planner_factory import load_config
from llm_economist.studies.hours import TOLERANCES, hours_moments, misses


def test_fitted_tastes_give_adults_hours_where_one_taste_cannot():
    """Every targeted moment within its tolerance: part time, short and long hours, the top
    quarter's hours, hours by schooling and by age band, and part time among the young and the
    old, on 16,000 workers (about 900 of them 65 or more, so that their sampling noise stays well
    inside the tolerances)."""
    fitted = hours_moments(load_config("experiments/configs/adult_hours.yaml").economy, 16_000, seed=1)
    one_taste = hours_moments(EconomyConfig(share_not_working=0.19, extensive_elasticity=0.25), 16_000, seed=1)
    assert all(abs(misses(fitted)[k]) <= 1 for k in TOLERANCES), misses(fitted)
    assert abs(misses(one_taste)["share_50_hours_or_more"]) > 2 and abs(misses(one_taste)["share_under_20_hours"]) > 2
    assert sum(m * m for m in misses(fitted).values()) < sum(m * m for m in misses(one_taste).values()) / 4
    assert fitted["share_not_working"] == pytest.approx(0.19, abs=0.005)
