"""What the surrogate reads about each agent: who it is, and what the mechanism means for it.

Persona features are fixed per agent, except the wage: the surrogate workers read it from the
wage in force (`wage_feature`), so a change of wage reaches them as it reaches the workers they
stand in for (in the training data the two are the same). The context is recomputed every period from the
mechanism in force, and it is mechanism-agnostic: instead of a schedule's parameters (whose
number and meaning differ between mechanisms) it gives each agent what the worker prompt makes
it weigh, in its own terms:

- the share of its gross pay it keeps at every hour bin, (z_b - T(z_b)) / z_40, where
  z_b = 52 w h_b is the yearly income of working h_b hours a week (one column per bin);
- the equal transfer it expects, over z_40;
- the marginal rate on its last income (on z_40 in the first period);
- its last hours over the cap, and whether there was a last period.

Any mechanism that compiles to a Policy is covered, so a surrogate trained under random
three-bracket schedules can be asked about the US schedule or a negative income tax. The
context is differentiable in the policy, which is what lets a planner take gradients of
welfare through the surrogate population.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from ..economy.policy import Policy
from ..economy.utility import FULL_TIME_HOURS, annual_income
from ..personas.population import category_levels

Tensor = torch.Tensor

# Categorical persona fields; their levels are the full sets the census tables define, so the
# codes of any sampled population agree with those the model was trained on.
CATEGORICAL = ("sex", "education", "occupation_group_code", "marital_status")
NUMERIC = ("log_wage", "age", "children", "household_size", "two_earners")
CONTEXT_EXTRA = ("transfer", "marginal_rate", "last_hours", "first_period")

__all__ = ["CATEGORICAL", "NUMERIC", "CONTEXT_EXTRA", "census_levels", "persona_features", "wage_feature", "context_features",
           "n_context"]


@lru_cache(maxsize=1)
def census_levels() -> dict[str, list[str]]:
    """All levels of every categorical persona field, in the census tables' code order."""
    levels = category_levels()
    return {name: [str(level) for level in levels[name]] for name in CATEGORICAL}


def persona_features(table: pd.DataFrame, levels: dict[str, list[str]] | None = None) -> tuple[Tensor, Tensor]:
    """(N, len(NUMERIC)) standardised numbers and (N, len(CATEGORICAL)) codes for a persona table.

    ``levels`` are the ones a model was trained with; a level it has never seen is an error
    rather than a silently shifted code.
    """
    numeric = np.stack(
        [
            wage_feature(torch.tensor(table["hourly_wage"].to_numpy(float))).numpy(),
            (table["age"].to_numpy(float) - 42.0) / 14.0,
            table["children"].to_numpy(float) / 2.0,
            (table["household_size"].to_numpy(float) - 2.0) / 1.3,
            (table["earners"].to_numpy(float) > 1).astype(float),
        ],
        axis=1,
    )
    levels = levels or census_levels()
    codes = []
    for name in CATEGORICAL:
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):  # recode the few categories, not every row
            column = column.cat.rename_categories([str(c) for c in column.cat.categories])
        else:
            column = column.astype(str)
        unknown = sorted(set(column.unique()) - set(levels[name]))
        if unknown:
            raise ValueError(f"persona field {name}: levels {unknown[:5]} were not in the surrogate's training data")
        codes.append(pd.Categorical(column, categories=levels[name]).codes.astype(np.int64))
    return torch.tensor(numeric, dtype=torch.float32), torch.tensor(np.stack(codes, axis=1))


def wage_feature(wage: Tensor) -> Tensor:
    """The standardised log hourly wage: NUMERIC's first column."""
    return (torch.log(wage) - math.log(25.0)) / 0.6


def n_context(n_bins: int) -> int:
    return n_bins + len(CONTEXT_EXTRA)


def context_features(
    wage: Tensor,  # (N,)
    policy: Policy,  # possibly batched: rates (..., K)
    expected_transfer: Tensor,  # (..., 1) or scalar
    last_hours: Tensor | None,  # (..., N) or None in the first period
    last_income: Tensor | None,  # (..., N) or None in the first period
    bins: Tensor,  # (B,) hours of each bin
) -> Tensor:
    """(..., N, B + 4) context of every agent under ``policy``, in the policy's dtype; batch dims follow the policy's."""
    schedule = policy.schedule
    batch = schedule.batch_shape
    n = wage.shape[-1]
    dtype = schedule.rates.dtype
    wage = wage.to(dtype)
    full_time = annual_income(wage, torch.tensor(FULL_TIME_HOURS, dtype=dtype))  # (N,)
    gross = annual_income(wage.unsqueeze(-1), bins.to(dtype))  # (N, B)
    keep = (gross - schedule.tax_of_choices(gross)) / full_time.unsqueeze(-1)  # (..., N, B)
    transfer = torch.as_tensor(expected_transfer, dtype=dtype).expand(*batch, 1) / full_time  # (..., N)
    if last_income is None:
        rate = schedule.marginal_rate(full_time.expand(*batch, n))
        hours = torch.zeros(*batch, n, dtype=dtype)
        first = torch.ones(*batch, n, dtype=dtype)
    else:
        rate = schedule.marginal_rate(last_income.to(dtype).expand(*batch, n))
        hours = last_hours.to(dtype).expand(*batch, n) / bins[-1].to(dtype)
        first = torch.zeros(*batch, n, dtype=dtype)
    extra = torch.stack([transfer.expand(*batch, n), rate, hours, first], dim=-1)  # (..., N, 4)
    return torch.cat([keep, extra], dim=-1)
