"""Config loading: every bad config is a ConfigError at load time that names the field at fault,
before any population or model is built."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import llm_economist.planner_factory  # noqa: F401  (imported up front so timings measure loading, not imports)
from llm_economist.config import ConfigError
from llm_economist.planner_factory import load_config, make_planner
from llm_economist.mechanisms import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT_CONFIGS = sorted((ROOT / "experiments").rglob("*.yaml"))


@pytest.mark.parametrize(
    "overrides, path, hint",
    [
        pytest.param(["population.n_agents=true"], "population.n_agents", "valid integer", id="boolean as integer"),
        pytest.param(["economy.elasticity=false"], "economy.elasticity", "valid number", id="boolean as number"),
        pytest.param(["economy.years=five"], "economy.years", "valid integer", id="string as integer"),
        pytest.param(["economy.eta=.nan"], "economy.eta", "finite number", id="nan"),
        pytest.param(["economy.max_hours=.inf"], "economy.max_hours", "finite number", id="infinity"),
        pytest.param(["welfare.name=happiness"], "welfare.name", "'utilitarian'", id="unknown welfare"),
        pytest.param(["seeds=0"], "seeds", "greater than or equal to 1", id="no seeds"),
        pytest.param(["llm.max_consecutive_fallbacks=-1"], "llm.max_consecutive_fallbacks", "greater than or equal to 0",
                     id="negative fallback limit"),
        pytest.param(["mechanism.name=progressiv", "planners=[{kind: us_federal}, {kind: flat}]"], "mechanism.name",
                     "unknown mechanism 'progressiv'; available: bracket_tax, flat", id="unknown mechanism, own-mechanism planners"),
        pytest.param(["mechanism.options={foo: 1}"], "mechanism.options.foo",
                     "unknown option for three_bracket; options are cutoffs, initial_rates, max_rate, rebate_share",
                     id="unknown mechanism option"),
        pytest.param(["mechanism.options={initial_rates: [0.1, 0.2, 0.6], max_rate: 0.5}"], "mechanism.options.initial_rates",
                     "initial_rates must lie in [0, max_rate = 0.5], got 0.6", id="initial rate above max_rate"),
        pytest.param(["mechanism.options={initial_rates: [0.1, 0.2]}"], "mechanism.options.initial_rates",
                     "one rate per cutoff (3), got 2", id="initial_rates of the wrong length"),
        pytest.param(["mechanism.options={initial_rates: [0.1, .inf, 0.3]}"], "mechanism.options.initial_rates.1",
                     "finite number", id="infinity in mechanism options"),
        pytest.param(["mechanism.options={max_rate: true}"], "mechanism.options.max_rate", "valid number",
                     id="boolean in mechanism options"),
        pytest.param(["mechanism.name=bracket_tax", "mechanism.options={cutoffs: [0, 50000, 10000]}", "planners=[{kind: search}]"],
                     "mechanism.options.cutoffs", "strictly increasing", id="decreasing cutoffs"),
        pytest.param(["planners=[{kind: saez, dampin: 0.3}]"], "planners.0.dampin",
                     "unknown option for saez; options are damping, elasticity, max_iterations, max_rate, tolerance",
                     id="unknown planner option"),
        pytest.param(["planners=[{kind: saez}, {kind: search, budget: -5}]"], "planners.1.budget", "at least 2",
                     id="negative budget"),
        pytest.param(["planners=[{kind: search, budget: true}]"], "planners.0.budget", "valid integer",
                     id="boolean in planner options"),
        pytest.param(["planners=[{kind: saez, damping: high}]"], "planners.0.damping", "valid number",
                     id="string in planner options"),
        pytest.param(["planners=[{kind: saez, damping: .nan}]"], "planners.0.damping", "finite number",
                     id="nan in planner options"),
        pytest.param(["planners=[{kind: grid, points_per_parameter: 1000}]"], "planners.0.points_per_parameter",
                     "more than max_points", id="grid with too many points"),
        pytest.param(["planners=[{kind: fixed, parameters: [0.1, 0.2, 1.7]}]"], "planners.0.parameters",
                     "rate_2 must lie in [0, 1]", id="fixed parameters outside the bounds"),
        pytest.param(["planners=[{kind: flat, rate: 1.5}]"], "planners.0.rate", "must lie in [0, 1]", id="flat rate above 1"),
        pytest.param(["mechanism.name=negative_income_tax"], "planners.0 (saez)", "needs a bracket_tax mechanism",
                     id="error of a whole planner entry"),
        pytest.param(["planners=[{kind: saez, label: no_tax}]"], "planners.0.label", "reserved for the no-tax baseline",
                     id="reserved label"),
        pytest.param(["planners=[{kind: saez}, {kind: saez}]"], "planners", "labels must be unique", id="duplicate labels"),
    ],
)
def test_a_bad_config_fails_at_load_naming_the_field(overrides, path, hint):
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    message = str(caught.value)
    assert f"\n  {path}: " in message
    assert hint in message


@pytest.mark.parametrize("config", EXPERIMENT_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_experiment_config_loads(config):
    assert load_config(config).planners


def test_yaml_integers_fill_float_fields():
    config = load_config(None, ["economy.max_hours=80", "planners=[{kind: saez, damping: 1}]"])
    assert config.economy.max_hours == 80.0


def test_new_fields_have_their_defaults():
    config = load_config()
    assert config.seeds == 1
    assert config.llm.max_consecutive_fallbacks == 20


def test_labels_default_to_the_kind():
    config = load_config(None, ["planners=[{kind: saez}, {kind: search, label: cem}]"])
    assert [p.label for p in config.planners] == ["saez", "cem"]


def test_seeded_planners_take_the_run_seed_unless_given_one():
    config = load_config(None, ["seed=4", "planners=[{kind: search}, {kind: random, seed: 9}]"])
    assert [make_planner(p, config).seed for p in config.planners] == [4, 9]


def test_a_bad_planner_option_fails_well_under_a_second(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("population: {n_agents: 10000000}\nworkers: {kind: llm}\nplanners: [{kind: saez}, {kind: search, dampin: 1}]\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="planners.1.dampin"):
        load_config(path)
    assert time.perf_counter() - start < 0.5


def test_a_plugin_mechanism_reports_its_own_errors_under_mechanism_options(tmp_path, monkeypatch):
    (tmp_path / "loose_mechanism.py").write_text(textwrap.dedent("""\
        def loose(**options):
            raise ValueError("loose: the options do not fit together")
        """))
    dist = tmp_path / "loose_mechanism-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loose-mechanism\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nloose = loose_mechanism:loose\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"\n  mechanism.options \(loose\): loose: the options do not fit together"):
        load_config(None, ["mechanism.name=loose", "mechanism.options={colour: red}"])


def test_the_cli_exits_2_with_one_line_naming_the_field_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("planners:\n  - kind: saez\n    dampin: 0.3\n")
    result = subprocess.run([sys.executable, "-m", "llm_economist.cli", "run", str(path)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert len([line for line in result.stderr.splitlines() if "planners.0.dampin" in line]) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()
