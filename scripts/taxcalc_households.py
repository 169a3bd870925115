"""Write the 2024 US taxes that PSL Tax-Calculator computes for a grid of tax units, the
independent figures `tests/test_us_tax_against_taxcalc.py` checks `USTax2024` against.

Run it where taxcalc 6.8.0 is installed (it is not a dependency of the package: it pulls numba,
bokeh and paramtools):

    python -m venv /tmp/taxcalc && /tmp/taxcalc/bin/pip install taxcalc==6.8.0
    /tmp/taxcalc/bin/python scripts/taxcalc_households.py tests/data/taxcalc_2024_households.csv

Every unit has wage income only and children under 17 who qualify for the EITC and the child
tax credit alike (no other dependants); filers are aged 40, and some childless units 22 or 67,
outside the childless EITC's ages. Three of taxcalc's settings are changed to state the law
`USTax2024` models: every eligible unit claims the EITC and the refundable child tax credit
(taxcalc otherwise draws who claims them, `eitc_claim_prob_scale` and `actc_claim_prob_scale`),
and married people filing separately
get none (taxcalc gives it to all of them; the law gives it only to spouses who lived apart for
the last half of the year with a qualifying child, which the personas cannot tell). Columns: status, children, age,
earnings of the head and of the spouse, whether both spouses are workers (a couple on one joint
return), and taxcalc's income tax after credits (`iitax`: the EITC and the child tax credit,
refundable parts paid out), the employee's payroll tax (half of `ptax_was`, which adds the
employer's share, plus `ptax_amc`), the EITC and the child tax credit (`c07220` against the tax,
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


def units() -> pd.DataFrame:
    rows = [(status, k, 40, z, 0, False) for status, k, z in product(MARS, range(4), EARNINGS)]
    rows += [("married_joint", k, 40, z1, z2, True) for k, z1, z2 in product(range(4), EARNINGS, EARNINGS) if z1 >= z2]
    young_or_old = [z for z in EARNINGS if z <= 27_000]
    rows += [(status, 0, age, z, 0, False) for status, age, z in product(("single", "married_joint"), (22, 67), young_or_old)]
    rows += [("married_joint", 0, age, z1, z2, True) for age, z1, z2 in product((22, 67), young_or_old, young_or_old) if z1 >= z2]
    return pd.DataFrame(rows, columns=["status", "children", "age", "earnings_head", "earnings_spouse", "two_earners"])


def main(out: str) -> None:
    grid = units()
    married = grid.status == "married_joint"
    data = pd.DataFrame({
        "RECID": range(1, len(grid) + 1), "MARS": grid.status.map(MARS), "XTOT": 1 + married.astype(int) + grid.children,
        "EIC": grid.children, "n24": grid.children, "nu18": grid.children, "age_head": grid.age, "age_spouse": grid.age * married.astype(int),
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
    result = calc.dataframe(["iitax", "ptax_was", "ptax_amc", "eitc", "c07220", "c11070"])
    grid["income_tax"] = result.iitax.round(2)
    grid["payroll_tax"] = (result.ptax_was / 2 + result.ptax_amc).round(2)
    grid["eitc"] = result.eitc.round(2)
    grid["child_tax_credit"] = (result.c07220 + result.c11070).round(2)
    with open(out, "w") as f:
        f.write(f"# PSL Tax-Calculator (taxcalc) {taxcalc.__version__}, tax year {YEAR}: scripts/taxcalc_households.py\n")
        grid.to_csv(f, index=False)


if __name__ == "__main__":
    main(sys.argv[1])
