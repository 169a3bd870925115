"""Planning against a stratified sample of households (`population.planning_agents`): whole
households, every worker equally likely, and a mechanism found on the sample that does on the
whole population what one found on the whole population does."""

import numpy as np
import pytest
import torch

from llm_economist.factory import build_setup, make_config_mechanism
from llm_economist.personas import household_sample, sample_population
from llm_economist.planner_factory import load_config, make_planner
from llm_economist.runner import Runner


def test_a_household_sample_takes_whole_households_and_every_worker_as_likely():
    population = sample_population(20_000, seed=2)
    household = population.table["household_id"].to_numpy()
    couple = population.table["household_id"].duplicated(keep=False).to_numpy()
    taken = np.zeros(population.n)
    sizes = []
    for seed in range(200):
        picked = household_sample(population, 2_000, seed)
        taken[picked] += 1
        sizes.append(len(picked))
        ours = np.isin(household, household[picked])
        assert (np.flatnonzero(ours) == picked).all()  # every member of a household drawn
    assert 0.2 < couple.mean() < 0.8
    for group in (couple, ~couple):  # each worker drawn with chance 2,000 / 20,000, single or in a couple
        assert taken[group].mean() / 200 == pytest.approx(0.1, abs=0.003)
    assert np.mean(sizes) == pytest.approx(2_000, rel=0.01)
    wage = population.table["hourly_wage"].to_numpy()
    deciles = np.quantile(wage, np.linspace(0.1, 0.9, 9))
    assert np.quantile(wage[household_sample(population, 2_000, 0)], np.linspace(0.1, 0.9, 9)) == pytest.approx(deciles, rel=0.03)


def test_a_mechanism_planned_on_a_tenth_of_the_workers_does_on_all_of_them_what_planning_on_all_does():
    """Grid search over three rebated brackets against 20,000 rational census workers and against
    2,000 of them drawn by household: played on all 20,000, the sampled plan captures the full
    plan's gain over no tax within 1 point."""
    settings = ["population.n_agents=20000", "workers.kind=rational", "mechanism.name=three_bracket",
                "planners=[{kind: grid, points_per_parameter: 7}]"]
    whole = build_setup(load_config(None, settings))
    sampled = build_setup(load_config(None, [*settings, "population.planning_agents=2000"]))
    assert sampled.planning_model.wage.shape[0] == pytest.approx(2_000, rel=0.05) == sampled.calibration["planning_agents"]
    assert sampled.model.wage.shape[0] == 20_000 and torch.equal(sampled.model.wage, whole.model.wage)
    config = whole.config
    mechanism = make_config_mechanism(config)
    planned = {name: make_planner(config.planners[0], config).propose(0, [], setup.planning_model)
               for name, setup in (("whole", whole), ("sampled", sampled))}
    welfare = whole.model.evaluate(mechanism, torch.stack([torch.zeros(3, dtype=torch.float64), planned["whole"], planned["sampled"]]))
    no_tax, on_all, on_sample = (float(w) for w in welfare)
    assert on_all > no_tax
    assert (on_sample - no_tax) / (on_all - no_tax) == pytest.approx(1.0, abs=0.01)


def test_a_run_plans_on_the_sample_and_plays_on_everyone(tmp_path):
    config = load_config(None, ["population.n_agents=3000", "population.planning_agents=300", "workers.kind=rational",
                                "mechanism.name=three_bracket", "economy.years=1", "economy.steps_per_year=1",
                                "planners=[{kind: search, budget: 40}]"])
    summary = Runner(config, tmp_path, progress=False).run()
    assert summary["calibration"]["planning_agents"] == pytest.approx(300, rel=0.1)
    assert summary["population"]["n_agents"] == 3000
