"""Fit a surrogate's wording noise to the language-model workers it was distilled from.

A language model's choice moves with the wording of its prompt: in the behavioural probe each
worker's hours respond to a 5% change of one number by a different amount (`response_sd`), and
a network trained on the model's traces learns only the mean of that. The surrogate workers
therefore tilt each decision by a standard normal draw fixed by the agent and what it is shown
(`workers.surrogate.wording_noise`), times a scale; this module finds the scale at which the
surrogate's probe gives the spread a probe of the language model measured, on the same config.
Calibrate on a probe of agents the comparison will not read (another `seed`), so the surrogate's
spread is then a prediction, not a fit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from scipy import optimize

from ..studies.behaviour import probe, read_probe
from ..config import RunConfig
from ..surrogate.model import SurrogatePopulation

__all__ = ["calibrate_wording", "surrogate_spread"]

LARGEST_SD = 10.0  # workers.wording_sd's upper bound


def surrogate_spread(config: RunConfig, model: str | Path, wording_sd: float, agents: int) -> float:
    """The probe's `response_sd` for the surrogate `model` on `config`'s economy, at this noise scale."""
    workers = config.workers.model_copy(update={"kind": "surrogate", "surrogate_model": str(model), "wording_sd": wording_sd})
    spread = probe(config.model_copy(update={"workers": workers}), agents)["response_sd"]
    if spread is None:
        raise ValueError("distill calibrate: the surrogate's probe found fewer than two agents away from a corner")
    return spread


def calibrate_wording(model: str | Path, config: RunConfig, measured: Path, out: str | Path | None = None, agents: int = 500,
                      log: Callable[[str], None] | None = None) -> dict:
    """Store in the model file (or `out`) the noise scale at which the surrogate's spread of individual
    responses matches the probe in `measured` of the language-model workers `config` describes."""
    found = read_probe(config, measured)
    target = found.get("response_sd")
    if target is None:
        raise ValueError(f"distill calibrate: the probe in {measured} measured no spread of individual responses")

    @cache  # brentq evaluates the bracket's ends again
    def gap(sd: float) -> float:
        spread = surrogate_spread(config, model, sd, agents)
        if log:
            log(f"wording_sd {sd:.4f}: spread {spread:.4f} (target {target:.4f})")
        return spread - target

    if gap(0.0) >= 0:
        sd = 0.0  # the network alone already spreads its responses as widely
    elif gap(LARGEST_SD) < 0:
        raise ValueError(f"distill calibrate: even wording_sd {LARGEST_SD:g} spreads the surrogate's responses less than "
                         f"the measured {target:.3f}")
    else:
        sd = float(optimize.brentq(gap, 0.0, LARGEST_SD, xtol=1e-3, rtol=1e-3))
    record = {"sd": sd, "target_response_sd": target, "target_response_sd_ci95": found.get("response_sd_ci95"),
              "achieved_response_sd": gap(sd) + target, "agents": agents,
              "seed": config.seed, "source": str(measured), "probed_agents": found.get("n_agents"),
              "llm_model": found.get("llm_model")}
    surrogate = SurrogatePopulation.load(model)
    surrogate.meta["wording"] = record
    surrogate.save(out or model)
    return record
