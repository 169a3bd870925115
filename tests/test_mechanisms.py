"""Mechanisms: parameter declarations, validation, compiled policies and the plug-in registry."""

import sys
import textwrap
from importlib.metadata import entry_points

import pytest
import torch

from llm_economist.mechanisms import ENTRY_POINT_GROUP, available_mechanisms, make_mechanism
from llm_economist.mechanisms.builtin import BracketTax, flat, us_filing_groups
from llm_economist.economy import Preferences, TaxSchedule, calibrate_psi
from llm_economist.economy.policy import TaxUnits
from llm_economist.economy.outcome import aggregates, settle
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


def _settle_incomes(policy, z):
    """Settle a period in which workers earn exactly the incomes z ($1,000 a week-hour)."""
    return settle(torch.full_like(z, 1000.0 / 52), z / 1000, policy, Preferences(max_hours=168.0))


def test_negative_income_tax_by_hand():
    """G = $12,000, r = 0.25 on incomes 0, 10k, 48k, 100k: withdrawn min(G, r z) = 0, 2,500,
    12,000, 12,000 (mean 6,625); the guarantees cost 12,000 each, so the funding rate is
    (12,000 - 6,625) / 39,500 = 0.136076 on all income."""
    policy = make_mechanism("negative_income_tax").compile(torch.tensor([12_000.0, 0.25], dtype=D))
    z = torch.tensor([0.0, 10_000.0, 48_000.0, 100_000.0], dtype=D)
    outcome = _settle_incomes(policy, z)
    t = 5_375.0 / 39_500.0
    assert float(outcome.funding_rate) == pytest.approx(t, rel=1e-12)
    net_tax = outcome.tax - outcome.transfer
    assert torch.allclose(net_tax, t * z - (12_000.0 - 0.25 * z).clamp(min=0), atol=1e-8)
    assert float(outcome.consumption[0]) == pytest.approx(12_000.0)  # a zero earner receives exactly G
    assert float(net_tax.sum()) == pytest.approx(0.0, abs=1e-8)  # the budget balances


@pytest.mark.parametrize("guarantee", [0.0, 20_000.0, 30_000.0])
def test_the_guarantee_is_what_a_zero_earner_lives_on_even_without_phase_out(guarantee):
    policy = make_mechanism("negative_income_tax").compile(torch.tensor([guarantee, 0.0], dtype=D))
    z = torch.tensor([0.0, 30_000.0, 90_000.0], dtype=D)
    outcome = _settle_incomes(policy, z)
    assert float(outcome.consumption[0]) == pytest.approx(guarantee)
    assert float(outcome.funding_rate) == pytest.approx(guarantee / 40_000.0)  # t = G / mean income


def test_an_unfundable_guarantee_shows_as_a_deficit():
    policy = make_mechanism("negative_income_tax").compile(torch.tensor([30_000.0, 0.5], dtype=D))
    outcome = _settle_incomes(policy, torch.tensor([0.0, 0.0, 10_000.0], dtype=D))
    assert float(outcome.funding_rate) == pytest.approx(0.5)  # capped: no marginal rate above 100%
    assert aggregates(outcome, 168.0)["budget_balance"] < -20_000


def test_clip_projects_onto_the_bounds():
    m = make_mechanism("negative_income_tax")
    clipped = m.clip(torch.tensor([50_000.0, float("nan")], dtype=D))
    assert clipped.tolist() == [30_000.0, 0.0]


def _install_entry_point(tmp_path, monkeypatch, name="progressive_line"):
    """Make a real distribution with an entry point `name` visible to importlib.metadata."""
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
        {name} = progressive_line:ProgressiveLine
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


def test_a_plugin_under_a_builtin_name_is_ignored_with_a_warning_naming_both(tmp_path, monkeypatch):
    _install_entry_point(tmp_path, monkeypatch, name="flat")
    with pytest.warns(UserWarning, match="'flat'") as caught:
        registry = available_mechanisms()
    assert registry["flat"] is flat
    message = str(caught[0].message)
    assert "llm_economist.mechanisms.builtin.flat" in message  # the built-in that keeps the name
    assert "progressive_line:ProgressiveLine of distribution llm-economist-progressive-line" in message  # the plug-in
    with pytest.warns(UserWarning, match="'flat'"):
        assert isinstance(make_mechanism("flat"), BracketTax)


@pytest.mark.parametrize("kind", ["rational", "bounded"])
def test_the_share_not_working_responds_to_the_guarantee(kind):
    """With an extensive margin (19% at 0 h under US 2024), a larger guarantee, paid for by a
    higher flat rate, keeps more workers at 0 h; the zero earners live on exactly G and the
    budget balances at the fixed point workers and budget reach."""
    from llm_economist.planner_factory import load_config
    from llm_economist.economy.outcome import hours_shares
    from llm_economist.factory import build_setup

    model = build_setup(load_config(None, ["population.n_agents=500", "economy.share_not_working=0.19",
                                           f"workers.kind={kind}"])).model
    nit = make_mechanism("negative_income_tax")
    shares = []
    for guarantee in (0.0, 7_500.0, 15_000.0, 22_500.0):
        outcome = model.respond(nit.compile(torch.tensor([guarantee, 0.25], dtype=D)))
        assert float(outcome.tax.mean() - outcome.transfer.reshape(-1)[0]) == pytest.approx(0.0, abs=1.0)
        if kind == "rational":
            idle = outcome.hours == 0
            assert torch.allclose(outcome.consumption[idle], torch.full_like(outcome.consumption[idle], guarantee))
            shares.append(hours_shares(outcome.hours, 80.0)["share_zero_hours"])
        else:
            shares.append(float(model.workers.probabilities(model.wage, *nit.compile(
                torch.tensor([guarantee, 0.25], dtype=D)).faced(outcome.funding_rate))[..., 0].mean()))
    assert all(later > earlier + 0.01 for earlier, later in zip(shares, shares[1:]))


def test_us_taxes_on_earnings_by_hand():
    """2024, single filer, by hand: income tax on earnings above the $14,600 deduction, payroll
    tax (6.2% to $168,600, 1.45%, 0.9% above $200,000) and the childless EITC (7.65% phase-in to
    $8,260, $632 at most, phased out at 7.65% from $10,330)."""
    us = make_mechanism("us_tax_2024", filing="single")
    z = torch.tensor([0.0, 8_000.0, 12_000.0, 50_000.0, 250_000.0], dtype=D)
    expected = [
        0.0,
        0.0765 * 8_000 - 0.0765 * 8_000,  # payroll paid back by the credit's phase-in
        0.0765 * 12_000 - (632.0 - 0.0765 * (12_000 - 10_330)),
        1_160.0 + 0.12 * (35_400 - 11_600) + 0.0765 * 50_000,
        39_110.50 + 0.32 * (235_400 - 191_950) + 0.062 * 168_600 + 0.0145 * 250_000 + 0.009 * 50_000,
    ]
    assert us.compile(us.initial()).schedule.tax(z).tolist() == pytest.approx(expected, abs=1e-6)
    bare = make_mechanism("us_tax_2024", payroll=False, eitc=False, standard_deduction=False, filing="single")
    assert torch.allclose(bare.compile(bare.initial()).schedule.tax(z), TaxSchedule.us_federal_2024().tax(z))
    # Without the payroll tax the credit's phase-in is a subsidy: a negative marginal rate.
    credit_only = make_mechanism("us_tax_2024", payroll=False, filing="single")
    assert float(credit_only.compile(credit_only.initial()).schedule.tax(z[1:2])) == pytest.approx(-612.0)


def test_us_revenue_kept_as_spending_shows_in_the_budget_balance():
    us = make_mechanism("us_tax_2024", rebate_share=0.0, filing="single")
    outcome = _settle_incomes(us.compile(us.initial()), torch.tensor([0.0, 50_000.0], dtype=D))
    assert float(outcome.transfer) == 0.0 and float(outcome.consumption[0]) == 0.0
    assert aggregates(outcome, 168.0)["budget_balance"] == pytest.approx(7_841.0 / 2)
    assert "funds government spending" in us.describe()


def test_us_taxes_by_filing_status_by_hand():
    """Head of household, 1 child, $30,000: income tax 10% x (30,000 - 21,900), payroll 7.65%,
    EITC $4,213 less 15.98% above $22,720, and the $2,000 child tax credit (its $810 against the
    income tax, the other $1,190 refunded, under 15% x (30,000 - 2,500)). Married, one earner, 2
    children, $40,000: 10% x (40,000 - 29,200), payroll, EITC $6,960 less 21.06% above $29,640,
    child tax credit $4,000 ($2,920 of it refunded). Married filing separately,
    $400,000: the separate brackets (37% from $365,600), payroll with Additional Medicare above
    $125,000. A couple who both work, $60,000 and $20,000, no children: one joint return on
    $80,000 (10% x 23,200 + 12% x 27,600 = $5,632), split (J(80k) + J(own) - J(other's)) / 2
    with J(60k) = 10% x 23,200 + 12% x 7,600 and J(20k) the childless EITC alone ($632 less 7.65%
    above $17,250, the joint phase-out), each paying payroll on its own
    wages; each spouse's marginal rate is the return's at $80,000, 12%, plus 7.65%."""
    groups = us_filing_groups(["head_of_household", "married_joint", "married_separate", "married_joint", "married_joint"],
                              [1, 2, 0, 0, 0], [1, 1, 1, 2, 2])
    units = TaxUnits(groups, torch.tensor([-1, -1, -1, 4, 3]))
    us = make_mechanism("us_tax_2024")
    policy = us.compile(us.initial())
    assert policy.by_filing
    z = torch.tensor([30_000.0, 40_000.0, 400_000.0, 60_000.0, 20_000.0], dtype=D)
    joint_return, j60, j20 = 2_320.0 + 0.12 * 27_600, 2_320.0 + 0.12 * 7_600, -(632.0 - 0.0765 * (20_000 - 17_250))
    expected = [
        810.0 + 0.0765 * 30_000 - (4_213.0 - 0.1598 * (30_000 - 22_720)) - 2_000.0,
        1_080.0 + 0.0765 * 40_000 - (6_960.0 - 0.2106 * (40_000 - 29_640)) - 4_000.0,
        105_660.75 + 0.062 * 168_600 + 0.0145 * 400_000 + 0.009 * (400_000 - 125_000),
        (joint_return + j60 - j20) / 2 + 0.0765 * 60_000,
        (joint_return + j20 - j60) / 2 + 0.0765 * 20_000,
    ]
    resolved = policy.for_agents(units, z)
    assert resolved.levy(z)[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert resolved.schedule.marginal_rate(z)[3:].tolist() == pytest.approx([0.12 + 0.0765] * 2, abs=1e-12)
    # Expecting the partner to earn nothing, the second earner faces the return at $20,000 alone:
    # below the deduction, in the EITC's phase-out.
    alone = policy.for_agents(units)
    assert alone.schedule.marginal_rate(z)[4].item() == pytest.approx(0.0765 + 0.0765, abs=1e-12)
    with pytest.raises(ValueError, match="filing"):
        policy.for_agents(None)
    with pytest.raises(ValueError, match="name each other"):
        TaxUnits(groups, torch.tensor([-1, -1, 4, -1, 3]))


def test_the_child_tax_credit_follows_schedule_8812_under_any_rates():
    """Income tax after the credits is max(L - credit, -refundable) at every income, with credit
    $2,000 a child under 17 and $500 an other dependant (a child of 17, an adult dependant) less 5%
    above the filer's threshold, and refundable min($1,700 a child under 17, 15% of earnings above
    $2,500, or with three such children the payroll tax less the EITC if more): the mechanism's
    schedules (without the EITC) against that formula evaluated pointwise, under random
    statutory rates that move where the credit stops being refunded."""
    from llm_economist.economy.tax import US_2024_FILERS

    statuses = ["single", "married_separate", "head_of_household", "married_joint"]
    dependants = [(1, 1, 0), (2, 2, 0), (3, 3, 0), (2, 1, 1), (0, 0, 1), (4, 3, 2), (7, 7, 0)]  # children, under 17, others
    cases = [(s, *d) for s in statuses for d in dependants]
    status, children, under_17, others = (list(column) for column in zip(*cases))
    units = TaxUnits(us_filing_groups(status, children, [1] * len(cases), credit_children=under_17, other_dependants=others),
                     torch.full((len(cases),), -1))
    thetas = 0.6 * torch.rand(16, 7, generator=torch.Generator().manual_seed(8), dtype=D)
    z = torch.linspace(0.0, 600_000.0, 3001, dtype=D).expand(len(cases), -1)

    def income_tax(**options) -> torch.Tensor:
        mechanism = make_mechanism("us_tax_2024", payroll=False, eitc=False, **options)
        return mechanism.compile(thetas).for_agents(units).schedule.tax_of_choices(z)  # (16, cases, points)

    before = income_tax(child_tax_credit=False)
    kids = torch.tensor(under_17, dtype=D).clamp(max=6).unsqueeze(-1)  # the credit counts up to six
    other = torch.tensor(others, dtype=D).unsqueeze(-1)
    start = torch.tensor([US_2024_FILERS[s].ctc_phase_out for s in status], dtype=D).unsqueeze(-1)
    credit = (2_000.0 * kids + 500.0 * other - 0.05 * (z - start).clamp(min=0)).clamp(min=0)
    earned = 0.15 * (z - 2_500.0).clamp(min=0)
    earned = torch.where(kids >= 3, torch.maximum(earned, 0.0765 * z), earned)  # part II-B: payroll tax less the EITC, here none
    refundable = torch.minimum(1_700.0 * kids, earned)
    torch.testing.assert_close(income_tax(), torch.maximum(before - credit, -refundable), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="credit_children"):
        us_filing_groups(["single"], [1], [1], credit_children=[2])
