"""The inequality-aversion study against what the economics says for sure."""

import pytest

from llm_economist.planner_factory import load_config
from llm_economist.studies.aversion import run_aversion_study


def test_the_optimum_redistributes_more_as_the_welfare_function_cares_more_for_the_worse_off(tmp_path):
    config = load_config(None, ["seeds=2", "population.n_agents=200", "mechanism.name=three_bracket"])
    rows = run_aversion_study(config, tmp_path, points=11, refine=5)["rows"]
    # Quasi-linear utility weighed equally: a dollar is worth the same to everyone, so any tax rebated
    # equally only costs hours; the optimum is no tax at all.
    assert [rows["0.0"][f"rate_{j}"]["mean"] for j in range(3)] == [0.0, 0.0, 0.0]
    assert rows["0.0"]["gain_percent"]["mean"] == pytest.approx(0.0, abs=1e-9)
    rebates = [rows[a]["rebate"]["mean"] for a in ("0.0", "0.5", "1.0", "2.0", "rawlsian")]
    assert rebates == sorted(rebates) and rebates[-1] > rebates[1] > 0
    hours = [rows[a]["mean_hours"]["mean"] for a in ("0.0", "0.5", "1.0", "2.0", "rawlsian")]
    assert hours == sorted(hours, reverse=True)
    table = (tmp_path / "table.md").read_text()
    assert "| Rawlsian |" in table and "| ability-weighted, aversion 1.0 |" in table
    assert (tmp_path / "aversion.png").stat().st_size > 10_000 and (tmp_path / "aversion.json").is_file()
