"""The gradient planner against the grid optimum, and one-pass welfare sensitivity against finite differences."""

import json
import subprocess
import sys

import pytest
import torch

from llm_economist.planner_factory import load_config
from llm_economist.economy import Policy, Preferences, TaxSchedule, calibrate_psi
from llm_economist.factory import make_config_mechanism
from llm_economist.mechanisms import make_mechanism
from llm_economist.mechanisms.base import Mechanism, Parameter
from llm_economist.planners import GradientPlanner, GridPlanner
from llm_economist.studies.sensitivity import finite_difference_gradient, welfare_gradient
from llm_economist.workers import BoundedRationalWorkers
from llm_economist.population_model import PopulationModel

D = torch.float64


@pytest.fixture(scope="module")
def bounded_world() -> PopulationModel:
    g = torch.Generator().manual_seed(1)
    wages = torch.exp(3.2 + 0.6 * torch.randn(500, generator=g, dtype=D))
    prefs = calibrate_psi(wages, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.5))
    workers = BoundedRationalWorkers(prefs, temperature=0.05, n_bins=33)
    return PopulationModel(wages, prefs, workers, "inverse_income", {"income_floor": 10_000.0})


class Unused(Mechanism):
    """A flat 20% tax whose one parameter changes nothing: welfare has no gradient in it."""

    name = "unused_parameter"

    def __init__(self) -> None:
        self.parameters = (Parameter("ignored", 0.0, 1.0, "fraction", "has no effect"),)

    def initial(self) -> torch.Tensor:
        return torch.tensor([0.5], dtype=D)

    def compile(self, theta: torch.Tensor) -> Policy:
        return Policy(TaxSchedule(torch.tensor([0.0], dtype=D), torch.tensor([0.2], dtype=D)))

    def describe(self) -> str:
        return "A flat tax with a parameter that does nothing."


def test_gradient_planner_reaches_the_grid_optimum(bounded_world):
    mechanism = make_mechanism("three_bracket")
    gradient = GradientPlanner(mechanism, seed=0).propose(0, [], bounded_world)
    grid = GridPlanner(mechanism, points_per_parameter=11).propose(0, [], bounded_world)
    w_gradient, w_grid = bounded_world.evaluate(mechanism, torch.stack([gradient, grid])).tolist()
    assert w_gradient >= w_grid - 0.01 * abs(w_grid)
    assert w_gradient >= w_grid - 1e-6 * abs(w_grid)  # continuous optimisation beats the grid's resolution


@pytest.mark.parametrize("theta", [[0.2, 0.3, 0.4], [0.5, 0.1, 0.6]])
def test_one_pass_gradient_matches_finite_differences(bounded_world, theta):
    mechanism = make_mechanism("three_bracket")
    exact = welfare_gradient(bounded_world, mechanism, theta)
    numeric = finite_difference_gradient(bounded_world, mechanism, theta, h=1e-4)
    assert exact.keys() == numeric.keys() == set(mechanism.names)
    for name in mechanism.names:
        assert exact[name] == pytest.approx(numeric[name], rel=1e-4, abs=1e-6)


def test_gradient_planner_stays_inside_the_bounds(bounded_world):
    mechanism = make_mechanism("three_bracket", max_rate=0.5)
    planner = GradientPlanner(mechanism, steps=40, restarts=2, lr=0.3, seed=3)
    theta = planner.propose(0, [], bounded_world)
    low, high = mechanism.bounds()
    assert ((theta >= low) & (theta <= high)).all()
    assert planner.evaluations == 2 * 40 + 2  # forward passes, then the true welfare of each restart's best


def test_gradient_planner_is_deterministic_under_a_seed(bounded_world):
    mechanism = make_mechanism("three_bracket")
    first = GradientPlanner(mechanism, steps=30, restarts=2, seed=7).propose(0, [], bounded_world)
    second = GradientPlanner(mechanism, steps=30, restarts=2, seed=7).propose(0, [], bounded_world)
    assert torch.equal(first, second)


def test_gradient_planner_refuses_welfare_without_a_gradient(bounded_world):
    with pytest.raises(ValueError, match="unused_parameter.*bounded"):
        GradientPlanner(Unused(), steps=5).propose(0, [], bounded_world)


def test_welfare_gradient_refuses_welfare_without_a_gradient(bounded_world):
    with pytest.raises(ValueError, match="unused_parameter.*bounded"):
        welfare_gradient(bounded_world, Unused(), [0.5])


def test_gradient_planner_rejects_bad_options():
    with pytest.raises(ValueError, match="steps"):
        GradientPlanner(make_mechanism("three_bracket"), steps=0)


def test_sensitivity_command_prints_every_parameter(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\n")
    out = tmp_path / "sensitivity.json"
    result = subprocess.run(
        [sys.executable, "-m", "llm_economist.cli", "sensitivity", str(config), "--set", "population.n_agents=200",
         "--set", "workers.kind=bounded", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = make_config_mechanism(load_config(config)).names
    assert all(name in result.stdout for name in names)
    assert "welfare" in result.stdout
    assert sorted(json.loads(out.read_text())["gradient"]) == sorted(names)
