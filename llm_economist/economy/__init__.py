"""Pure, vectorised economics in torch: schedules, utility, labour supply, welfare, Saez."""

from .inequality import gini, lorenz_curve
from .labour import best_response_hours, calibrate_psi, hour_bins, logit_hour_probabilities
from .outcome import Outcome, settle
from .policy import Policy
from .saez import arc_elasticity, pareto_parameter, saez_bracket_rates, saez_top_rate
from .tax import US_FEDERAL_2024_CUTOFFS, US_FEDERAL_2024_RATES, TaxSchedule
from .utility import WEEKS_PER_YEAR, Preferences, annual_income, consumption_utility, labour_disutility, utility
from .welfare import SOCIAL_WELFARE_FUNCTIONS, marginal_welfare_weights, social_welfare

__all__ = [
    "gini", "lorenz_curve", "best_response_hours", "calibrate_psi", "hour_bins", "logit_hour_probabilities",
    "Outcome", "settle", "Policy", "arc_elasticity", "pareto_parameter", "saez_bracket_rates", "saez_top_rate",
    "US_FEDERAL_2024_CUTOFFS", "US_FEDERAL_2024_RATES", "TaxSchedule", "WEEKS_PER_YEAR", "Preferences",
    "annual_income", "consumption_utility", "labour_disutility", "utility", "SOCIAL_WELFARE_FUNCTIONS",
    "marginal_welfare_weights", "social_welfare",
]
