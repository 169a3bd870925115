"""The behavioural probe against independent truth: the closed-form response of rational workers
(corners included), to small and to large changes, a finite difference of bounded workers' expected
hours, the habit and imitation weights a bounded population was built with, a scripted language
model that always takes the first option it is shown, one that reads the budget menu and chooses as
bounded workers do, one whose choice follows the wording of its prompt, and one that answers only
the last digit of its tax rate."""

import json
import math
import re
import shutil
import zlib
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fault_server import FaultServer
from llm_economist.studies.behaviour import EVIDENCE, RATE_GRID, STEP, headline, probe, run_probe
from llm_economist.cli import main
from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.economy.labour import best_response_hours
from llm_economist.economy.policy import Policy
from llm_economist.economy.tax import TaxSchedule
from llm_economist.economy.utility import utility, utility_scale
from llm_economist.factory import build_setup
from llm_economist.surrogate.model import SurrogatePopulation
from llm_economist.workers.surrogate import shipped_model_path

FLAT = ["mechanism.name=flat", "mechanism.options={initial_rates: [0.25]}"]
ARC = math.log((1 + STEP) / (1 - STEP))


def probed_setup(config, agents: int):
    """The economy the probe builds for `agents` agents of `config`."""
    return build_setup(config.model_copy(update={"population": config.population.model_copy(update={"n_agents": agents})}))


def flat_policy(rate: float) -> Policy:
    return Policy(TaxSchedule.from_lists([0.0], [rate]))


def test_rational_quasi_linear_workers_show_the_configured_elasticity_and_their_corners():
    config = load_config(None, ["workers.kind=rational", "economy.max_hours=50", *FLAT])
    result = probe(config, 300)
    assert result["eti_interior"] == pytest.approx(0.33, rel=0.02)
    # Truth for everyone: each worker's uncapped best response scales by (net-of-tax)^0.33, then the cap binds.
    setup = probed_setup(config, 300)
    wage, prefs = setup.model.wage, setup.model.prefs
    uncapped = best_response_hours(wage, flat_policy(0.25).schedule, 0.0, replace(prefs, max_hours=168.0))
    assert float(uncapped.max()) < 160  # the widest cap never binds: these are the interior choices
    at = {s: (uncapped * (1 + s) ** 0.33).clamp(max=50.0) for s in (STEP, -STEP)}
    truth = math.log(float((wage * at[STEP]).sum() / (wage * at[-STEP]).sum())) / ARC
    assert 0.05 < float((uncapped >= 50).double().mean()) < 0.9  # the cap binds for some, not all
    assert result["eti"] == pytest.approx(truth, rel=1e-6)
    assert result["eti"] < result["eti_interior"]
    assert result["income_effect_hours_per_10k"] == 0.0 and result["salience_ratio"] == pytest.approx(1.0)
    assert result["persistence"] == pytest.approx(0.0, abs=1e-9) and result["social_pull"] == pytest.approx(0.0, abs=1e-9)
    assert result["position_bias_js"] == 0.0 and result["top_bin_probability"] is None
    assert result["participation_elasticity"] is None  # no extensive margin without fixed costs


def test_rational_workers_large_change_response_has_the_closed_form_and_agrees_with_the_local_one():
    config = load_config(None, ["workers.kind=rational", "economy.max_hours=50", *FLAT])
    result = probe(config, 300)
    # Off the corners hours scale as (1 - t)^0.33, so from 10% to 70% they fall by (0.3 / 0.9)^0.33.
    assert math.exp(result["log_hours_ratio_observed"]) == pytest.approx((0.3 / 0.9) ** 0.33, rel=1e-6)
    assert result["hours_elasticity_global_interior"] == pytest.approx(0.33, rel=1e-6)
    # Everyone: each worker's uncapped best response at 25% scaled to each grid rate, then capped.
    setup = probed_setup(config, 300)
    uncapped = best_response_hours(setup.model.wage, flat_policy(0.25).schedule, 0.0, replace(setup.model.prefs, max_hours=168.0))
    at = {r: (uncapped * ((1 - r) / 0.75) ** 0.33).clamp(max=50.0) for r in RATE_GRID}
    assert result["hours_ratio_70_10"] == pytest.approx(float(at[0.7].sum() / at[0.1].sum()), rel=1e-6)
    assert result["hours_ratio_70_10"] > (0.3 / 0.9) ** 0.33 + 0.01  # the cap binds more at 10%: corners damp the ratio
    slope = 0.1 * np.polyfit(RATE_GRID, [float(at[r].mean()) for r in RATE_GRID], 1)[0]
    assert result["rate_grid_slope_h_per_10pt"] == pytest.approx(slope, rel=1e-6)
    assert result["response_coherent"] is True


def test_bounded_workers_large_change_response_matches_their_expected_hours_and_agrees_with_the_local_one():
    config = load_config(None, ["workers.kind=bounded", *FLAT])
    result = probe(config, 200)
    setup = probed_setup(config, 200)
    workers, wage = setup.model.workers, setup.model.wage
    transfer = setup.model.respond(flat_policy(0.25)).transfer
    hours = {r: workers.expected_hours(wage, flat_policy(r), transfer) for r in (0.1, 0.7)}
    assert result["hours_ratio_70_10"] == pytest.approx(float(hours[0.7].sum() / hours[0.1].sum()), rel=1e-6)
    assert result["response_coherent"] is True


def test_bounded_workers_match_a_finite_difference_of_their_expected_hours():
    config = load_config(None, ["workers.kind=bounded", *FLAT])
    result = probe(config, 200)
    setup = probed_setup(config, 200)
    workers, wage = setup.model.workers, setup.model.wage
    transfer = setup.model.respond(flat_policy(0.25)).transfer
    hours = {s: workers.expected_hours(wage, flat_policy(1 - 0.75 * (1 + s)), transfer) for s in (STEP, -STEP)}
    truth = math.log(float((wage * hours[STEP]).sum() / (wage * hours[-STEP]).sum())) / ARC
    assert result["eti"] == pytest.approx(truth, rel=0.10)
    assert result["position_bias_js"] == 0.0  # no presentation: reversing the options changes nothing
    assert 0 < result["top_bin_probability"] < 1


def test_habit_and_imitation_are_recovered_as_persistence_and_social_pull():
    config = load_config(None, ["workers.kind=bounded", "workers.persistence=0.3", "workers.social_pull=0.2"])
    result = probe(config, 600)
    assert result["persistence"] == pytest.approx(0.3, rel=0.10)
    assert result["social_pull"] == pytest.approx(0.2, rel=0.10)
    low, high = result["social_pull_ci95"]
    assert low < 0.2 < high
    # Every figure lies inside its own interval (up to rounding).
    outside = [k for k, v in result.items() if isinstance(v, float) and result.get(f"{k}_ci95")
               and not result[f"{k}_ci95"][0] - 1e-9 <= v <= result[f"{k}_ci95"][1] + 1e-9]
    assert outside == []


BOUNDED_SOCIAL = ["workers.hour_bins=9", "workers.temperature=0.05", "workers.persistence=0.3", "workers.social_pull=0.2"]


def test_a_surrogate_distilled_from_bounded_workers_with_habit_and_imitation_answers_the_probe_as_they_do():
    """The shipped `bounded_social` surrogate (experiments/distill/bounded.yaml, seeds 2000-2149, a
    random last week shown at chance 0.35) on a census sample it never saw, against the workers it
    was distilled from."""
    truth = probe(load_config(None, ["seed=7", "workers.kind=bounded", *BOUNDED_SOCIAL]), 500)
    surrogate = probe(load_config(None, ["seed=7", "workers.kind=surrogate",
                                         f"workers.surrogate_model={shipped_model_path('bounded_social')}"]), 500)
    for figure in ("mean_hours", "eti", "eti_interior", "hours_elasticity", "wage_elasticity", "persistence", "social_pull"):
        assert surrogate[figure] == pytest.approx(truth[figure], rel=0.10), figure


def test_the_bounded_population_model_rolls_habit_and_imitation_forward():
    config = load_config(None, ["workers.kind=bounded", "workers.persistence=0.3", "workers.social_pull=0.2",
                                "workers.horizon=4", "population.n_agents=50"])
    setup = build_setup(config)
    workers, wage = setup.model.workers, setup.model.wage
    policy, transfer = flat_policy(0.25), torch.zeros(1)
    chosen = workers.logit(wage, policy, transfer) @ workers.bins.double()
    hours = chosen
    neighbours = setup.graph.neighbours
    for _ in range(3):  # by hand: each period the expectation mixes the logit, its own and its contacts' last
        contacts = torch.stack([hours[[j for j in row.tolist() if j >= 0]].mean() if (row >= 0).any() else hours[i]
                                for i, row in enumerate(neighbours)])
        hours = 0.5 * chosen + 0.3 * hours + 0.2 * contacts
    torch.testing.assert_close(workers.expected_hours(wage, policy, transfer), hours)


def test_a_surrogate_population_has_no_position_bias():
    result = probe(load_config(None, ["workers.kind=surrogate"]), 30)
    assert result["position_bias_js"] == 0.0
    assert result["fairness_per_10_points"] is not None  # the surrogate reports reasoning channels


def first_option(body: dict) -> str:
    """A model that always takes the first hour option it is shown (budget menu or narrative)."""
    menu = re.search(r"^(\d+) h: ", body["messages"][1]["content"], re.M)
    if menu:
        return json.dumps({"hours": int(menu.group(1)), "fairness": 3, "trust": 3, "stress": 3})
    listed = re.search(r"hours \(one of ([0-9, ]+)\)", body["messages"][0]["content"]).group(1)
    return json.dumps({"hours": int(listed.split(",")[0]), "fairness": 3, "trust": 3, "stress": 3, "reason": "first",
                       "message": "hi"})


def test_a_model_that_takes_the_first_option_shows_full_position_bias(tmp_path):
    with FaultServer(content=first_option) as server:
        config = load_config(None, ["workers.kind=llm", f"llm.base_urls=[{server.url}]", "llm.model=fault-model",
                                    "llm.timeout_s=2", "planners=[{kind: saez}]"])
        result = probe(config, 6, cache_path=str(tmp_path / "cache.sqlite"))
    # Forward each agent takes the first of its shuffled options, reversed the last: never the same bin.
    assert result["position_bias_js"] == pytest.approx(1.0)
    assert result["top_bin_probability"] == pytest.approx(1.0)
    assert result["eti"] == pytest.approx(0.0) and result["share_correct_sign"] == 0.0  # position, not pay, decides


def menu_reader(prefs, temperature: float):
    """A model that reads only the budget menu's text (its wage and what each option leaves to spend)
    and chooses as bounded-rational workers do: a logit over the stated utility of each option."""
    def money(text: str) -> float:  # $950, $12.5k, -$1.2k
        return float(text.replace("$", "").replace(",", "").removesuffix("k")) * (1000 if text.endswith("k") else 1)

    def reply(body: dict):
        menu = body["messages"][1]["content"]
        wage = float(re.search(r"You earn \$([\d,.]+) an hour", menu).group(1).replace(",", ""))
        options = re.findall(r"^(\d+) h: (-?\$[\d,.]+k?)$", menu, re.M)
        hours = torch.tensor([float(h) for h, _ in options], dtype=torch.float64)
        spend = torch.tensor([money(c) for _, c in options], dtype=torch.float64)
        scale = float(utility_scale(torch.tensor(wage, dtype=torch.float64), prefs.eta))
        logprobs = torch.log_softmax(utility(spend, hours, prefs) / (temperature * scale), dim=0).tolist()
        # Each bin's first digit names it; the likeliest first, as a server lists its top alternatives.
        digits = dict(sorted(((h[0], lp) for (h, _), lp in zip(options, logprobs)), key=lambda d: -d[1]))
        best = next(iter(digits))
        return [('{"hours": ', {}), (best, digits),
                (("0" if best != "0" else "") + ', "fairness": 3, "trust": 3, "stress": 3}', {})]

    return reply


def test_bounded_workers_voiced_through_the_budget_menu_answer_the_probe_as_they_do(tmp_path):
    """The menu carries what a decision needs: a model choosing from its text alone, as bounded
    workers choose from the economy itself, shows their response (up to the menu's rounding)."""
    bounded = load_config(None, ["workers.kind=bounded", "workers.hour_bins=9", "workers.temperature=0.05"])
    truth = probe(bounded, 40)
    prefs = probed_setup(bounded, 40).model.prefs
    with FaultServer(content=menu_reader(prefs, 0.05), max_requests=5000) as server:
        config = load_config(None, ["workers.kind=llm", "workers.decision_format=budget_menu", f"llm.base_urls=[{server.url}]",
                                    "llm.model=fault-model", "llm.temperature=1.0", "llm.timeout_s=5"])
        voiced = probe(config, 40, cache_path=str(tmp_path / "cache.sqlite"))
    for figure in ("mean_hours", "eti", "eti_interior", "hours_elasticity", "wage_elasticity", "salience_ratio",
                   "top_bin_probability"):
        assert voiced[figure] == pytest.approx(truth[figure], rel=0.02), figure
    assert voiced["position_bias_js"] == pytest.approx(0.0, abs=1e-12)  # it reads what an option pays, not where it is
    assert voiced["persistence"] == pytest.approx(0.0, abs=0.02) and voiced["social_pull"] == pytest.approx(0.0, abs=0.02)


def last_digit(body: dict):
    """A model that reads only the last digit of its tax rate: a rate ending in 1-4 leans 7% of its
    choice 10 h up, one ending in 6-9 10 h down, one ending in 0 or 5 not at all (around a bin set by
    its persona). The +-5% variations of a 25% rate read 21% and 29%, while 10%, 30%, 50% and 70% all
    end in 0: locally responsive, globally flat."""
    rules, situation = body["messages"][0]["content"], body["messages"][1]["content"]
    rate = int(re.search(r"Income tax on yearly income: [^:]*: (\d+)%", rules).group(1))
    bin_ = str(3 + zlib.crc32(situation.splitlines()[0].encode()) % 3)  # 30, 40 or 50 h
    lean = 1 if 1 <= rate % 10 <= 4 else -1 if rate % 10 >= 6 else 0
    alternatives = {bin_: math.log(0.93), str(int(bin_) + lean): math.log(0.07)} if lean else {bin_: 0.0}
    return [('{"hours": ', {}), (bin_, alternatives),
            ('0, "fairness": 3, "trust": 3, "stress": 3, "reason": "r", "message": "m"}', {})]


def test_a_model_that_reads_only_the_rates_last_digit_is_flagged_as_not_responding_to_taxes(tmp_path):
    with FaultServer(content=last_digit) as server:
        config = load_config(None, ["workers.kind=llm", f"llm.base_urls=[{server.url}]", "llm.model=fault-model",
                                    "llm.temperature=1.0", "llm.timeout_s=5", *FLAT])
        result = probe(config, 8, cache_path=str(tmp_path / "cache.sqlite"))
    low, high = EVIDENCE["eti"]["band"]
    assert low < result["eti"] < high and result["eti_ci95"][0] > 0  # the local elasticity passes for a real one
    assert result["hours_ratio_70_10"] == 1.0  # large changes move nobody
    assert result["response_coherent"] is False
    assert "local and large-change responses disagree" in headline(result) and "not a response to taxes" in headline(result)


def test_the_headline_leads_with_the_large_change_response_at_the_precision_of_its_intervals():
    result = {"rate_grid_hours_all": [22.71, 22.2, 22.5, 22.02], "rate_grid_hours_all_ci95": [[21.9, 23.5]] * 4,
              "hours_ratio_70_10": 0.9696, "hours_ratio_70_10_ci95": [0.9312, 1.0101],
              "eti": 0.3412, "eti_ci95": [0.1123, 0.5934], "response_coherent": False, "response_coherence_reason": "why"}
    line = headline(result)
    assert line.startswith("hours at a 70% own-bracket rate 22.0 h against 22.7 h at 10%, ratio 0.970 [0.931, 1.010]; "
                           "local elasticity of taxable income 0.34 [0.11, 0.59]; "
                           "local and large-change responses disagree: why; evidence ")
    assert "disagree" not in headline(result | {"response_coherent": True})


def worded(body: dict) -> str:
    """A model whose choice follows the wording: 40 h, or 50 h for one prompt in eight (by a hash of the text)."""
    text = "".join(message["content"] for message in body["messages"])
    hours = 50 if zlib.crc32(text.encode()) % 8 == 0 else 40
    return json.dumps({"hours": hours, "fairness": 3, "trust": 3, "stress": 3, "reason": "r", "message": "m"})


def test_wording_noise_calibrated_on_a_language_models_probe_gives_the_surrogate_its_spread(tmp_path):
    model = tmp_path / "surrogate.pt"
    shutil.copy(shipped_model_path(), model)
    with FaultServer(content=worded) as server:
        settings = ["--set", f"llm.base_urls=[{server.url}]", "--set", "llm.model=fault-model", "--set", "seed=100"]
        done = CliRunner().invoke(main, ["behaviour", "experiments/behaviour/llm_narrative.yaml", *settings, "--agents", "24",
                                         "--out", str(tmp_path / "probe"), "--quiet"])
        assert done.exit_code == 0, done.output
    measured = json.loads((tmp_path / "probe" / "behaviour.json").read_text())["response_sd"]
    assert measured > 0.3  # some agents' hours moved with the wording of a 5% change

    done = CliRunner().invoke(main, ["distill", "calibrate", str(model), "experiments/behaviour/llm_narrative.yaml", *settings,
                                     "--behaviour", str(tmp_path / "probe"), "--agents", "200"])
    assert done.exit_code == 0, done.output
    record = SurrogatePopulation.load(model).meta["wording"]
    assert record["target_response_sd"] == measured and record["achieved_response_sd"] == pytest.approx(measured, rel=0.03)
    assert 0 < record["sd"] < 10
    # The surrogate workers read the fitted scale from the model file (here on agents the fit never saw)...
    surrogate = ["workers.kind=surrogate", f"workers.surrogate_model={model}"]
    spread = probe(load_config(None, [*surrogate, "seed=5"]), 500)["response_sd"]
    assert spread == pytest.approx(measured, rel=0.15)
    # ...and workers.wording_sd overrides it: without the noise the network moves everyone alike.
    assert probe(load_config(None, [*surrogate, "seed=5", "workers.wording_sd=0"]), 500)["response_sd"] < 0.1
    # A probe of another population is refused by name.
    done = CliRunner().invoke(main, ["distill", "calibrate", str(model), "experiments/behaviour/llm_narrative.yaml", *settings,
                                     "--set", "economy.elasticity=0.5", "--behaviour", str(tmp_path / "probe")])
    assert done.exit_code != 0 and "probed a different population" in done.output


def test_the_behaviour_command_writes_its_files_and_compare_reports_the_response(tmp_path):
    out = tmp_path / "probe"
    done = CliRunner().invoke(main, ["behaviour", "experiments/configs/quickstart.yaml", "--set", "workers.kind=rational",
                                     "--agents", "50", "--out", str(out), "--quiet"])
    assert done.exit_code == 0, done.output
    result = json.loads((out / "behaviour.json").read_text())
    required = ["eti", "eti_ci95", "eti_interior", "eti_interior_ci95", "eti_under_20k", "eti_20k_50k", "eti_50k_100k", "eti_over_100k",
                "hours_elasticity", "wage_elasticity", "income_effect_hours_per_10k", "share_correct_sign", "response_sd",
                "salience_ratio", "position_bias_js", "top_bin_probability", "n_agents", "n_decisions", "wall_s",
                "hours_ratio_70_10", "hours_ratio_70_10_ci95", "rate_grid_slope_h_per_10pt", "rate_grid_slope_h_per_10pt_ci95",
                "hours_elasticity_global", "hours_elasticity_global_ci95", "log_hours_ratio_observed",
                "log_hours_ratio_observed_ci95", "log_hours_ratio_predicted", "log_hours_ratio_predicted_ci95",
                "response_coherent", "response_coherence_reason"]
    assert all(key in result for key in required)
    assert not any(isinstance(v, dict) for v in result.values())  # one flat object
    assert {p.name for p in out.glob("*.png")} == {"hours_against_rate.png", "individual_responses.png"}
    assert "| elasticity of taxable income, all agents |" in (out / "behaviour.md").read_text()

    config = load_config(None, ["workers.kind=bounded", "population.n_agents=40", "economy.years=1", "planners=[{kind: saez}]"])
    summary = run_comparison(config, tmp_path / "run", progress=False)
    assert summary["behaviour"]["measured"] and summary["behaviour"]["eti_ci95"] is not None
    from llm_economist.reporting import write_report

    report = write_report(tmp_path / "run").read_text()
    assert "## Does the population respond?" in report and "Saez, Slemrod and Giertz 2012" in report


def test_figures_that_are_zero_up_to_rounding_print_as_zero(tmp_path):
    # Bounded workers without habit, imitation or income effects: those figures are 0, computed in floats.
    done = CliRunner().invoke(main, ["behaviour", "experiments/configs/getting_started.yaml", "--agents", "60",
                                     "--out", str(tmp_path), "--quiet"])
    assert done.exit_code == 0, done.output
    result, markdown = json.loads((tmp_path / "behaviour.json").read_text()), (tmp_path / "behaviour.md").read_text()
    assert abs(result["income_effect_hours_per_10k"]) < 1e-9  # 0, or the rounding the report must not print
    assert "| hours per $10k more transfer (income effect) | 0 [0, 0] |" in markdown
    assert "| weight on own last hours | 0 [0, 0] |" in markdown
    assert re.search(r"\de-1\d", markdown) is None


def test_a_language_model_comparison_without_a_probe_says_its_response_is_unmeasured(tmp_path):
    with FaultServer(content=first_option) as server:
        config = load_config(None, ["workers.kind=llm", f"llm.base_urls=[{server.url}]", "llm.model=fault-model",
                                    "population.n_agents=4", "economy.years=1", "planners=[{kind: us_federal}]"])
        summary = run_comparison(config, tmp_path / "run", progress=False)
        assert not summary["behaviour"]["measured"] and "llm-economist behaviour" in summary["behaviour"]["line"]
        with pytest.raises(ValueError, match="--behaviour"):
            run_comparison(config, tmp_path / "other", progress=False, behaviour=tmp_path / "run")  # no probe there


def test_a_probe_named_by_a_relative_path_is_linked_from_the_report(tmp_path, monkeypatch):
    from llm_economist.reporting import write_report

    monkeypatch.chdir(tmp_path)
    with FaultServer(content=first_option) as server:
        config = load_config(None, ["workers.kind=llm", f"llm.base_urls=[{server.url}]", "llm.model=fault-model",
                                    "population.n_agents=4", "economy.years=1", "planners=[{kind: us_federal}]"])
        run_probe(config, Path("probes/llm"), 4)
        run_comparison(config, Path("runs/compare"), progress=False, behaviour=Path("probes/llm"))
    report = write_report(tmp_path / "runs/compare").read_text()
    link = re.search(r"Full probe: \[`[^`]+`\]\(([^)]+)\)", report)[1]
    assert (tmp_path / "runs/compare" / link).is_file() and link == "../../probes/llm/behaviour.md"
