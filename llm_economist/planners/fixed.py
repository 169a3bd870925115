"""Fixed schedules: the 2024 US federal rates and a flat rate, never changed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..mechanisms.base import Mechanism
from ..mechanisms.builtin import USTax2024, flat
from ..population_model import PopulationModel
from .base import Planner, YearRecord

Tensor = torch.Tensor

BASELINE = "no_tax"  # the label of the no-tax planner every run plays beside the configured ones


class FixedPlanner(Planner):
    kind = "fixed"

    def __init__(self, mechanism: Mechanism, parameters: Sequence[float] | None = None) -> None:
        super().__init__(mechanism)
        try:
            self.theta = mechanism.validate(mechanism.initial() if parameters is None else list(parameters))
        except ValueError as err:
            raise ValueError(f"fixed planner: parameters do not fit the mechanism: {err}") from None

    def propose(self, year: int, history: list[YearRecord], population_model: PopulationModel) -> Tensor:
        return self.theta.clone()


def us_federal_planner(payroll: bool = True, eitc: bool = True, rebate_share: float = 1.0) -> FixedPlanner:
    """The 2024 US taxes on a single filer's earnings (`USTax2024`): income tax above the standard
    deduction, payroll tax and EITC; revenue is rebated equally unless rebate_share says otherwise."""
    return FixedPlanner(USTax2024(payroll=payroll, eitc=eitc, rebate_share=rebate_share))


def flat_planner(rate: float = 0.2, rebate_share: float = 1.0) -> FixedPlanner:
    if not 0 <= rate <= 1:
        raise ValueError(f"flat planner: rate must lie in [0, 1], got {rate}")
    return FixedPlanner(flat(initial_rates=[rate], rebate_share=rebate_share), [rate])


def no_tax_planner() -> FixedPlanner:
    """No tax and no transfer: the baseline W_0 of gain captured."""
    return FixedPlanner(flat(initial_rates=[0.0]), [0.0])
