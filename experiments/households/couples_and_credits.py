"""What joint returns and the child tax credit change, on a census sample under the 2024 US taxes
at its calibrated hours (rational workers, the default economy); prints one JSON object.

    python experiments/households/couples_and_credits.py [N_AGENTS] [SEED]

- Couples: the tax of each two-earner couple on one joint return against the rule it replaced
  (each spouse on its own earnings under the joint schedule halved, ½ J(2 z_i) each), and the
  secondary earner's marginal rate under each.
- Child tax credit, with the credit for other dependants: its mean per worker, the share of workers whose unit gets it, and the share
  whose marginal rate the credit moves (down 15 points in the refundable phase-in, up 5 in the
  phase-out).
- Spouses' likeness: the correlations of spouses' ages and log wages.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from llm_economist.config import EconomyConfig
from llm_economist.factory import calibrated_preferences, population_units
from llm_economist.mechanisms import make_mechanism
from llm_economist.personas import sample_population
from llm_economist.population_model import PopulationModel
from llm_economist.workers import RationalWorkers


def main(n: int = 2_000, seed: int = 0) -> dict:
    population = sample_population(n, seed=seed)
    units, wage = population_units(population), population.wage()
    prefs, calibration = calibrated_preferences(EconomyConfig(), wage, seed, units)
    model = PopulationModel(wage, prefs, RationalWorkers(prefs), units=units)
    us, without_credit = make_mechanism("us_tax_2024"), make_mechanism("us_tax_2024", child_tax_credit=False)
    policy = us.compile(us.initial())
    outcome = model.respond(policy)
    z, partner = outcome.income, units.partner
    resolved = model.resolve(policy, outcome)

    first = torch.nonzero(partner > torch.arange(n)).squeeze(-1)
    second = partner[first]
    returns = resolved.joint.combined  # rows by filing group
    row = lambda who: returns.for_agent(units.filing[who])  # noqa: E731
    joint = row(first).tax(z[first] + z[second])
    halved = 0.5 * (row(first).tax(2 * z[first]) + row(second).tax(2 * z[second]))
    lower = torch.where(z[first] <= z[second], first, second)
    payroll = resolved.joint.earner.marginal_rate(z[lower])
    rate_joint = resolved.schedule.marginal_rate(z)[lower]
    rate_halved = row(lower).marginal_rate(2 * z[lower]) + payroll

    bare = model.resolve(without_credit.compile(without_credit.initial()), outcome)
    credit = bare.levy(z)[0] - resolved.levy(z)[0]
    moved = bare.schedule.marginal_rate(z) - resolved.schedule.marginal_rate(z)

    table = population.table
    age, log_wage = table.age.to_numpy().astype(float), np.log(table.hourly_wage.to_numpy())
    a, b = first.numpy(), second.numpy()
    return {
        "agents": n, "seed": seed, "psi": calibration["psi"], "two_earner_couples": len(first),
        "couple_tax_halved_minus_joint_mean": round(float((halved - joint).mean()), 1),
        "couple_tax_halved_minus_joint_max": round(float((halved - joint).max()), 1),
        "couple_tax_halved_minus_joint_min": round(float((halved - joint).min()), 1),
        "secondary_marginal_rate_joint_mean": round(float(rate_joint.mean()), 4),
        "secondary_marginal_rate_halved_mean": round(float(rate_halved.mean()), 4),
        "secondary_rate_higher_share": round(float((rate_joint > rate_halved + 1e-9).double().mean()), 3),
        "secondary_rate_lower_share": round(float((rate_joint < rate_halved - 1e-9).double().mean()), 3),
        "secondary_hours_mean": round(float(outcome.hours[lower].mean()), 2),
        "primary_hours_mean": round(float(outcome.hours[partner[lower]].mean()), 2),
        "child_tax_credit_per_worker": round(float(credit.mean()), 1),
        "child_tax_credit_share_of_workers": round(float((credit > 0.5).double().mean()), 3),
        "refundable_phase_in_share": round(float((moved > 0.14).double().mean()), 4),
        "credit_phase_out_share": round(float((moved < -0.04).double().mean()), 4),
        "spouse_age_correlation": round(float(np.corrcoef(age[a], age[b])[0, 1]), 3),
        "spouse_log_wage_correlation": round(float(np.corrcoef(log_wage[a], log_wage[b])[0, 1]), 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(*(int(x) for x in sys.argv[1:]))))
