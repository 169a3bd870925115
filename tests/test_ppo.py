"""The reinforcement-learning planner: PPO from stable-baselines3 trained against the population model."""

import json

import pytest
import torch

from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import sample_population
from llm_economist.planners import GridPlanner
from llm_economist.planners.fixed import no_tax_planner
from llm_economist.planners.ppo import PPOPlanner
from llm_economist.population_model import PopulationModel
from llm_economist.reporting import write_report
from llm_economist.workers import RationalWorkers

BUDGET = 4096  # environment steps (tax years)


@pytest.fixture(scope="module")
def three_brackets():
    wage = sample_population(300, seed=0).wage()
    prefs = calibrate_psi(wage, TaxSchedule.us_federal_2024(), Preferences(eta=0.0, elasticity=0.33))
    return PopulationModel(wage, prefs, RationalWorkers(prefs)), make_mechanism("three_bracket")


def test_ppo_captures_90_percent_of_the_grids_gain_within_its_budget(three_brackets):
    model, mechanism = three_brackets
    grid = GridPlanner(mechanism, points_per_parameter=11, refine_points=5).propose(0, [], model)
    ppo = PPOPlanner(mechanism, timesteps=BUDGET, seed=0).propose(0, [], model)
    none = no_tax_planner()
    w0 = float(model.evaluate(none.mechanism, none.theta.unsqueeze(0))[0])
    randoms = torch.rand(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w_grid, w_ppo = model.evaluate(mechanism, torch.stack([grid, ppo])).tolist()
    assert (w_ppo - w0) / (w_grid - w0) >= 0.9
    assert w_ppo > float(model.evaluate(mechanism, randoms).mean())


def test_ppo_takes_part_in_a_comparison_and_its_training_curve_reaches_the_report(tmp_path):
    config = load_config(None, ["population.n_agents=100", "economy.years=1", "economy.steps_per_year=1",
                                "planners=[{kind: ppo, timesteps: 256, n_steps: 128}]"])
    run_comparison(config, tmp_path, progress=False)
    curve = json.loads((tmp_path / "summary.json").read_text())["planners"]["ppo"]["training_curves"][0]
    assert [steps for steps, _ in curve] == [128, 256]
    text = write_report(tmp_path).read_text()
    assert "](training_curve.png)" in text and (tmp_path / "training_curve.png").is_file()
    saved = tmp_path / "seed_0" / "planners" / "ppo"
    assert {p.name for p in saved.iterdir()} == {"ppo_policy.zip", "ppo_vecnormalize.pkl"}


def test_the_saved_policy_chooses_the_parameters_the_planner_held(three_brackets, tmp_path, capsys):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from llm_economist.envs.planner_env import PlannerEnv

    model, mechanism = three_brackets
    planner = PPOPlanner(mechanism, timesteps=256, n_steps=128, seed=3)
    planner.progress = True  # as the runner sets it when it draws a bar
    held = planner.propose(0, [], model)
    shown = capsys.readouterr().err
    assert "ppo training" in shown and "256/256" in shown
    for name, data in planner.artifacts.items():
        (tmp_path / name).write_bytes(data)
    env = VecNormalize.load(str(tmp_path / "ppo_vecnormalize.pkl"),
                            DummyVecEnv([lambda: PlannerEnv(model.wage, mechanism, model.prefs, model.workers, steps_per_year=1, years=1)]))
    env.training = False
    agent = PPO.load(tmp_path / "ppo_policy.zip", device="cpu")
    action, _ = agent.predict(env.reset(), deterministic=True)
    assert torch.equal(env.venv.envs[0].unwrapped.parameters_of(action[0]), held)


@pytest.mark.parametrize("options, name", [({"timesteps": 0}, "timesteps"), ({"n_steps": 1}, "n_steps"),
                                           ({"learning_rate": -1.0}, "learning_rate")])
def test_bad_ppo_options_name_the_option(options, name):
    with pytest.raises(ValueError, match=name):
        PPOPlanner(make_mechanism("three_bracket"), **options)
