"""Mechanisms: parameter declarations, validation, compiled policies and the plug-in registry."""

import sys
import textwrap
from importlib.metadata import entry_points

import pytest
import torch

from llm_economist.mechanisms import ENTRY_POINT_GROUP, available_mechanisms, make_mechanism
from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.planners import SearchPlanner
from llm_economist.workers import RationalWorkers
from llm_economist.population_model import PopulationModel

D = torch.float64


def test_builtins_are_registered_by_name():
    assert {"bracket_tax", "us_federal_2024", "three_bracket", "flat", "negative_income_tax"} <= set(available_mechanisms())


def test_us_federal_preset_starts_at_the_2024_rates():
    m = make_mechanism("us_federal_2024")
    assert m.initial().tolist() == [0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]
    assert m.names == [f"rate_{j}" for j in range(7)]
    assert "from $609,350 upward" in m.parameters[-1].description


def test_any_number_of_brackets():
    m = make_mechanism("bracket_tax", cutoffs=[0, 10_000, 20_000, 40_000, 80_000], initial_rates=[0.1] * 5)
    assert m.size == 5
    z = torch.tensor([30_000.0], dtype=D)
    assert m.compile(m.initial()).schedule.tax(z).item() == pytest.approx(3_000.0)


def test_out_of_bounds_parameters_name_the_parameter():
    m = make_mechanism("three_bracket")
    with pytest.raises(ValueError, match="parameter rate_2 must lie in \\[0, 1\\].*got 1.3"):
        m.validate([0.1, 0.2, 1.3])
    with pytest.raises(ValueError, match="expected 3 parameters"):
        m.validate([0.1, 0.2])
    with pytest.raises(ValueError, match="parameter rate_0 .* got nan"):
        m.validate([float("nan"), 0.2, 0.3])


def test_unknown_mechanism_and_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown name 'progressiv'"):
        make_mechanism("progressiv")
    with pytest.raises(ValueError, match="bad options"):
        make_mechanism("flat", colour="red")
    with pytest.raises(ValueError, match="strictly increasing"):
        make_mechanism("bracket_tax", cutoffs=[0, 50_000, 10_000])


def test_negative_income_tax_net_tax_is_flat_tax_minus_phased_out_guarantee():
    m = make_mechanism("negative_income_tax")
    rate, guarantee, phase_out = 0.2, 12_000.0, 0.25
    policy = m.compile(torch.tensor([rate, guarantee, phase_out], dtype=D))
    z = torch.tensor([0.0, 10_000.0, 48_000.0, 100_000.0], dtype=D)
    net = policy.schedule.tax(z) - guarantee
    expected = rate * z - (guarantee - phase_out * z).clamp(min=0)
    assert torch.allclose(net, expected)
    taxes = policy.schedule.tax(z)
    # Budget balance: what is not paid as the guarantee comes back equally.
    assert torch.allclose(policy.transfer(taxes), taxes.mean().reshape(1))


def test_clip_projects_onto_the_bounds():
    m = make_mechanism("negative_income_tax")
    clipped = m.clip(torch.tensor([0.9, -5.0, float("nan")], dtype=D))
    assert clipped.tolist() == [0.6, 0.0, 0.0]


def _install_entry_point(tmp_path, monkeypatch):
    """Make a real distribution with an entry point visible to importlib.metadata."""
    source = (
        __import__("pathlib").Path(__file__).resolve().parents[1]
        / "experiments/plugins/progressive_line/progressive_line/__init__.py"
    )
    pkg = tmp_path / "progressive_line"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(source.read_text())
    dist = tmp_path / "llm_economist_progressive_line-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-economist-progressive-line\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
        [{ENTRY_POINT_GROUP}]
        progressive_line = progressive_line:ProgressiveLine
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "progressive_line", raising=False)


def test_a_plugin_registered_by_entry_point_works_with_an_unchanged_planner(tmp_path, monkeypatch, wages):
    _install_entry_point(tmp_path, monkeypatch)
    assert "progressive_line" in [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)]
    m = make_mechanism("progressive_line", n_brackets=6)
    assert m.names == ["base_rate", "top_rate"]
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences())
    population_model = PopulationModel(wages, prefs, RationalWorkers(prefs))
    planner = SearchPlanner(m, budget=60, batch=20)
    theta = planner.propose(0, [], population_model)
    assert planner.evaluations == 60
    assert population_model.evaluate(m, theta.unsqueeze(0))[0] >= population_model.evaluate(m, m.initial().unsqueeze(0))[0]
