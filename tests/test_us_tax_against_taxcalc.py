"""The 2024 US taxes on earnings (`USTax2024`) against PSL Tax-Calculator, an independent
implementation: one-earner units of every filing status and two-earner couples on one joint
return, 0-6 children (EITC, child tax credit), children of 17 and adult dependants (credit for
other dependants), $0 to $1M each, and childless units inside and outside the childless EITC's
ages, aged filers with their larger deduction (`scripts/taxcalc_households.py` made the table)."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from llm_economist.economy.policy import TaxUnits
from llm_economist.economy.tax import US_2024_AGED, US_2024_CHILDLESS_EITC_AGES
from llm_economist.mechanisms import make_mechanism
from llm_economist.mechanisms.builtin import us_filing_groups

TABLE = Path(__file__).parent / "data" / "taxcalc_2024_households.csv"


def household_taxes(table: pd.DataFrame, **options) -> torch.Tensor:
    """(units,) each tax unit's taxes under `USTax2024(**options)`: one worker per head, one more
    per working spouse, the two on one joint return."""
    n, couples = len(table), torch.tensor(table.index[table.two_earners.to_numpy()].to_numpy())
    status = list(table.status) + ["married_joint"] * len(couples)
    both = lambda column: list(table[column]) + list(table[column].iloc[couples.numpy()])  # noqa: E731
    children, credit_children = both("children"), both("credit_children")
    others = [k - c + a for k, c, a in zip(children, credit_children, both("adult_dependants"))]
    earners = [2 if two else 1 for two in table.two_earners] + [2] * len(couples)
    partner = torch.full((n + len(couples),), -1, dtype=torch.long)
    partner[couples] = torch.arange(n, n + len(couples))
    partner[n:] = couples
    age = both("age")  # spouses are of one age here
    of_age = [US_2024_CHILDLESS_EITC_AGES[0] <= a <= US_2024_CHILDLESS_EITC_AGES[1] for a in age]
    aged = [(a >= US_2024_AGED) * (2 if s == "married_joint" else 1) for a, s in zip(age, status)]
    units = TaxUnits(us_filing_groups(status, children, earners, of_age, aged, credit_children, others), partner)
    z = torch.tensor(list(table.earnings_head) + list(table.earnings_spouse.iloc[couples.numpy()]), dtype=torch.float64)
    mechanism = make_mechanism("us_tax_2024", **options)
    taxes = mechanism.compile(mechanism.initial()).for_agents(units, z).levy(z)[0]
    unit = torch.cat([torch.arange(n), couples])
    return torch.zeros(n, dtype=torch.float64).index_add_(0, unit, taxes)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(TABLE, comment="#")


def test_the_table_covers_couples_and_every_filing_status(table):
    assert set(table.status) == {"single", "married_joint", "married_separate", "head_of_household"}
    assert table.two_earners.sum() > 500 and set(table.children) == {0, 1, 2, 3, 4, 6} and (table.eitc > 0).sum() > 100
    assert (table.credit_children < table.children).sum() > 100 and (table.adult_dependants > 0).sum() > 100
    assert (table.child_tax_credit > 0).sum() > 300 and {22, 40, 67} == set(table.age)


def test_income_tax_after_the_eitc_and_child_tax_credit_matches_taxcalc_to_the_cent(table):
    ours = household_taxes(table, payroll=False)
    assert (ours - torch.tensor(table.income_tax.to_numpy())).abs().max() <= 0.01


def test_income_and_payroll_taxes_match_taxcalc_to_the_cent(table):
    ours = household_taxes(table)
    assert (ours - torch.tensor((table.income_tax + table.payroll_tax).to_numpy())).abs().max() <= 0.01
