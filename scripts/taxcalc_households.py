"""Write the 2024 US taxes that PSL Tax-Calculator computes for a grid of tax units, the
independent figures `tests/test_us_tax_against_taxcalc.py` checks `USTax2024` against.

Run it where taxcalc 6.8.0 is installed (it is not a dependency of the package: it pulls numba,
bokeh and paramtools):

    python -m venv /tmp/taxcalc && /tmp/taxcalc/bin/pip install taxcalc==6.8.0
    /tmp/taxcalc/bin/python scripts/taxcalc_households.py tests/data/taxcalc_2024_households.csv

Every unit has wage income only. Its children are under 18 and qualify for the EITC; the child
tax credit counts those under 17 (`credit_children`), and the credit for other dependants the
rest and any adult dependants (`adult_dependants`, who qualify for neither the EITC nor the
child tax credit). Filers are aged 40, and some childless units 22 or 67, outside the childless
EITC's ages. Three of taxcalc's settings are changed to state the law `USTax2024` models: every
eligible unit claims the EITC and the refundable child tax credit (taxcalc otherwise draws who
claims them, `eitc_claim_prob_scale` and `actc_claim_prob_scale`), and married people filing
separately get none (taxcalc gives it to all of them; the law gives it only to spouses who lived
apart for the last half of the year with a qualifying child, which the personas cannot tell).
Columns: status, children, credit_children, adult_dependants, age, earnings of the head and of
the spouse, whether both spouses are workers (a couple on one joint return), and taxcalc's
income tax after credits (`iitax`: the EITC and the child tax credits, refundable parts paid
out), the employee's payroll tax (half of `ptax_was`, which adds the employer's share, plus
`ptax_amc`), the EITC and the child tax credits (`c07220` and `odc` against the tax, `c11070`
`c11070` refunded).
"""

from __future__ import annotations

import sys
from itertools import product

import pandas as pd
import taxcalc

YEAR = 2024
EARNINGS = (0, 4_000, 9_000, 15_000, 21_000, 27_000, 35_000, 48_000, 62_000, 85_000, 120_000, 175_000,
            240_000, 330_000, 480_000, 700_000, 1_000_000)
MARS = {"single": 1, "married_joint": 2, "married_separate": 3, "head_of_household": 4}


# (children, of them under 17, adult dependants) beyond units whose children are all under 17:
# a child of 17, adult dependants alone or beside children, and more than three children.
OTHER_DEPENDANTS = ((1, 0, 0), (2, 1, 0), (0, 0, 1), (3, 2, 1), (4, 4, 0), (4, 3, 1), (6, 6, 0))
COUPLE_DEPENDANTS = ((2, 1, 1), (4, 4, 0))


def units() -> pd.DataFrame:
    rows = [(status, k, k, 0, 40, z, 0, False) for status, k, z in product(MARS, range(4), EARNINGS)]
    rows += [("married_joint", k, k, 0, 40, z1, z2, True) for k, z1, z2 in product(range(4), EARNINGS, EARNINGS) if z1 >= z2]
    young_or_old = [z for z in EARNINGS if z <= 27_000]
    rows += [(status, 0, 0, 0, age, z, 0, False) for status, age, z in product(("single", "married_joint"), (22, 67), young_or_old)]
    rows += [("married_joint", 0, 0, 0, age, z1, z2, True) for age, z1, z2 in product((22, 67), young_or_old, young_or_old) if z1 >= z2]
    rows += [(status, *kids, 40, z, 0, False) for status, kids, z in product(MARS, OTHER_DEPENDANTS, EARNINGS)]
    rows += [("married_joint", *kids, 40, z1, z2, True) for kids, z1, z2 in product(COUPLE_DEPENDANTS, EARNINGS, EARNINGS) if z1 >= z2]
    return pd.DataFrame(rows, columns=["status", "children", "credit_children", "adult_dependants", "age", "earnings_head",
                                       "earnings_spouse", "two_earners"])


def main(out: str) -> None:
    grid = units()
    married = grid.status == "married_joint"
    data = pd.DataFrame({
        "RECID": range(1, len(grid) + 1), "MARS": grid.status.map(MARS),
        "XTOT": 1 + married.astype(int) + grid.children + grid.adult_dependants,
        "EIC": grid.children.clip(upper=3), "n24": grid.credit_children, "nu18": grid.children, "age_head": grid.age, "age_spouse": grid.age * married.astype(int),
        "e00200p": grid.earnings_head.astype(float), "e00200s": grid.earnings_spouse.astype(float),
        "e00200": (grid.earnings_head + grid.earnings_spouse).astype(float),
    })
    records = taxcalc.Records(data=data, start_year=YEAR, gfactors=None, weights=None, adjust_ratios=None)
    policy = taxcalc.Policy()
    policy.implement_reform({"eitc_claim_prob_scale": {YEAR: 9e99}, "actc_claim_prob_scale": {YEAR: 9e99},
                             "EITC_sep_filers_elig": {YEAR: False}})
    calc = taxcalc.Calculator(policy=policy, records=records)
    calc.calc_all()
    assert calc.current_year == YEAR
    result = calc.dataframe(["iitax", "ptax_was", "ptax_amc", "eitc", "c07220", "odc", "c11070"])
    grid["income_tax"] = result.iitax.round(2)
    grid["payroll_tax"] = (result.ptax_was / 2 + result.ptax_amc).round(2)
    grid["eitc"] = result.eitc.round(2)
    grid["child_tax_credit"] = (result.c07220 + result.odc + result.c11070).round(2)
    with open(out, "w") as f:
        f.write(f"# PSL Tax-Calculator (taxcalc) {taxcalc.__version__}, tax year {YEAR}: scripts/taxcalc_households.py\n")
        grid.to_csv(f, index=False)


if __name__ == "__main__":
    main(sys.argv[1])
