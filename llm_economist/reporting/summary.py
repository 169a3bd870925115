"""Per-seed run summaries combined into the comparison a person reads: every headline figure a
mean over seeds with a 95% t-interval, gain captured against the no-tax baseline played on the
same population, and a ranking that says which planners the seeds cannot tell apart.

Statistics come from scipy: the interval of a mean is the one of a one-sample t-test, and two
planners are told apart by the interval of their paired welfare difference (every planner meets
the same seeds, so the differences cancel what a seed's population shares). Below three seeds
there is no interval and no test: with one degree of freedom a 95% t-interval is 12.7 standard
errors wide each side, wider than most quantities' own range. A quantity with natural bounds
(a share, a Gini, a mechanism parameter's box) has its interval cut to them: the true mean lies
inside them, so the cut interval covers it as often as the whole one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

from ..planners.fixed import BASELINE

SUMMARY, TIMINGS = "summary.json", "timings.json"
CONFIDENCE = 0.95
MIN_SEEDS = 3  # for an interval or a test
# Figures bounded by their nature: shares and Gini coefficients lie in [0, 1]; gain captured, in
# percent of each seed's best configured planner's gain, never exceeds 100.
BOUNDS = {"gini_income": (0.0, 1.0), "gini_consumption": (0.0, 1.0), "share_zero_hours": (0.0, 1.0),
          "share_at_cap": (0.0, 1.0), "fallback_share": (0.0, 1.0), "gain_captured": (-math.inf, 100.0)}
# Per-seed figures of a planner that the combined summary carries as a mean with an interval.
HEADLINE_METRICS = (
    "expected_welfare", "mean_hours", "output", "revenue", "transfer", "gini_income", "gini_consumption", "share_zero_hours", "share_at_cap",
    "fallback_share",
)


@dataclass(frozen=True)
class Interval:
    """Mean of n values and its 95% t-interval; low and high are None below two values."""

    mean: float
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": None if self.low is None else [self.low, self.high], "n": self.n}


def interval(values: Sequence[float | None], bounds: Sequence[float] | None = None) -> Interval | None:
    """The mean of the finite values with its 95% t-interval, cut to `bounds` (None when there are
    no values; no interval below `MIN_SEEDS` values)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return None
    mean = float(x.mean())
    if len(x) < MIN_SEEDS:
        return Interval(mean, None, None, len(x))
    if _no_spread(x):  # scipy's interval is undefined (or lost to rounding): the mean is exact
        return Interval(mean, mean, mean, len(x))
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
    low, high = float(ci.low), float(ci.high)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(mean, low, high, len(x))


def bracketed(mean: float | None, ci95: Sequence[float] | None, spec: str = ".1f") -> str:
    """'12.3 [10.1, 14.5]' for tables of means with their 95% intervals; no brackets without an
    interval, 'n/a' without a mean."""
    if mean is None:
        return "n/a"
    return f"{mean:{spec}}" + (f" [{ci95[0]:{spec}}, {ci95[1]:{spec}}]" if ci95 else "")


def _no_spread(x: np.ndarray) -> bool:
    return float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.abs(x).max()))


def distinguishable(a: Sequence[float], b: Sequence[float]) -> bool | None:
    """Whether the 95% interval of the paired difference a - b excludes 0 (None below `MIN_SEEDS` pairs)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if len(d) < MIN_SEEDS:
        return None
    if _no_spread(d):
        return bool(abs(d.mean()) > 0)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)
    return not (ci.low <= 0.0 <= ci.high)


def gain_captured(welfare: float, no_tax: float, best: float) -> float | None:
    """(W - W_0) / (W_best - W_0) in percent; None when the best planner does not beat no tax."""
    gain = best - no_tax
    return 100.0 * (welfare - no_tax) / gain if gain > 0 else None


def ranking(welfare: dict[str, list[float]]) -> list[dict]:
    """Planners by mean welfare; a planner's rank is 1 + the number of planners that beat it at
    95% on the paired seeds, so planners the seeds cannot separate share a rank."""
    means = {k: float(np.mean(v)) for k, v in welfare.items()}
    order = sorted(means, key=lambda k: -means[k])
    rows = []
    for label in order:
        tests = {other: distinguishable(welfare[label], welfare[other]) for other in order if other != label}
        beaten_by = [o for o, apart in tests.items() if apart and means[o] > means[label]]
        rows.append({
            "planner": label,
            "rank": 1 + len(beaten_by),
            "welfare_mean": means[label],
            "not_distinguishable_from": [o for o, apart in tests.items() if apart is False],
            "tested": all(apart is not None for apart in tests.values()),
        })
    return rows


def tied_groups(ranking: list[dict]) -> list[list[str]]:
    """The largest groups of planners no two of which the seeds tell apart (maximal cliques of the
    not-distinguishable relation, best mean first): ties are not transitive, so a planner can sit
    in two groups, and a group is what "tied" can honestly mean."""
    order = [row["planner"] for row in ranking]
    tied = {row["planner"]: set(row["not_distinguishable_from"]) for row in ranking}
    groups: list[list[str]] = []

    def grow(group: list[str], candidates: list[str], excluded: set[str]) -> None:  # Bron-Kerbosch
        if not candidates and not excluded:
            if len(group) > 1:
                groups.append(sorted(group, key=order.index))
            return
        for label in list(candidates):
            grow(group + [label], [c for c in candidates if c in tied[label]], excluded & tied[label])
            candidates = [c for c in candidates if c != label]
            excluded = excluded | {label}

    grow([], order, set())
    return sorted(groups, key=lambda g: [order.index(x) for x in g])


def _stats(values: list, bounds: Sequence[float] | None = None) -> dict:
    found = interval(values, bounds)
    return found.as_dict() if found is not None else {"mean": None, "ci95": None, "n": 0}


def _sum_counts(dicts: Sequence[dict | None]) -> dict:
    total: dict = {}
    for d in dicts:
        for key, value in (d or {}).items():
            if isinstance(value, dict):
                total[key] = _sum_counts([total.get(key), value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def _diagnostics(per_seed: Sequence[dict]) -> dict:
    """Worker diagnostics over seeds: counts add up, means (`..._mean_...`) are averaged."""
    total = _sum_counts(per_seed)
    for key in total:
        if "_mean_" in key:
            total[key] = float(np.mean([d[key] for d in per_seed if key in d]))
    return total


def timings(seconds, labels) -> dict:
    """When a summary was made and each planner's wall time: kept in the summary while it is in memory,
    written apart (`write_summary`)."""
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_s": dict(zip(labels, seconds))}


def write_summary(out: Path, summary: dict) -> None:
    """`summary.json` without its timings, which go to `timings.json`: two runs of one config write
    byte-identical summaries, and the times are still kept."""
    (out / SUMMARY).write_text(json.dumps({k: v for k, v in summary.items() if k != "timings"}, indent=2))
    (out / TIMINGS).write_text(json.dumps(summary.get("timings", {}), indent=2))


def read_summary(run_dir: Path) -> dict:
    """A run directory's summary with its timings (empty where none were kept)."""
    summary = json.loads((run_dir / SUMMARY).read_text())
    summary["timings"] = json.loads((run_dir / TIMINGS).read_text()) if (run_dir / TIMINGS).is_file() else {}
    return summary


def combine(summaries: Sequence[dict]) -> dict:
    """One summary over seeds from the per-seed summaries of `Runner.summarise` (same config)."""
    if not summaries:
        raise ValueError("combine: no seed finished")
    first = summaries[0]
    seeds = [s["seed"] for s in summaries]
    labels = list(dict.fromkeys(label for s in summaries for label in s["planners"]))
    # Gain captured needs the baseline and every configured planner in a seed.
    configured = [label for label in labels if label != BASELINE]
    gains: dict[str, dict[int, float | None]] = {label: {} for label in labels}
    for s in summaries:
        p = s["planners"]
        if BASELINE in p and configured and all(label in p for label in configured):
            best = max(p[label]["final_welfare"] for label in configured)
            for label in labels:
                gains[label][s["seed"]] = gain_captured(p[label]["final_welfare"], p[BASELINE]["final_welfare"], best)
    planners = {}
    for label in labels:
        rows = [(s["seed"], s["planners"][label]) for s in summaries if label in s["planners"]]
        played = [seed for seed, _ in rows]
        welfare = [p["final_welfare"] for _, p in rows]
        gain = [gains[label].get(seed) for seed in played]
        last = rows[-1][1]
        w, g = _stats(welfare), _stats(gain, BOUNDS["gain_captured"])
        planners[label] = {
            "kind": last["kind"],
            "mechanism": last["mechanism"],
            "instrument": last.get("instrument"),
            "uses_population_model": last["uses_population_model"],
            "seeds": played,
            "welfare_mean": w["mean"],
            "welfare_ci95": w["ci95"],
            "gain_captured_mean": g["mean"],
            "gain_captured_ci95": g["ci95"],
            "per_seed": {"welfare": welfare, "gain_captured": gain, **{m: [p.get(m) for _, p in rows] for m in HEADLINE_METRICS}},
            **{m: _stats([p.get(m) for _, p in rows], BOUNDS.get(m)) for m in HEADLINE_METRICS},
            "parameters": {
                name: {**_stats([p["parameters"][name] for _, p in rows], last["parameter_info"][name].get("bounds")),
                       **last["parameter_info"][name]}
                for name in last["parameters"]
            },
            "schedules": [p["schedule"] for _, p in rows],
            "decisions": sum(p["decisions"] for _, p in rows),
            "fallbacks": sum(p["fallbacks"] for _, p in rows),
            "fallback_reasons": _sum_counts([p["fallback_reasons"] for _, p in rows]),
            "worker_diagnostics": _diagnostics([p["worker_diagnostics"] for _, p in rows]),
            "evaluations": sum(p["evaluations"] for _, p in rows),
            "years": [p["years"] for _, p in rows],
            "notes": list(dict.fromkeys(note for _, p in rows for note in p["notes"])),
            "training_curves": [p.get("training_curve") for _, p in rows],
        }
    # Ranked only against like: every seed played, each to as many tax years as any planner reached (a
    # stopped run leaves some short; their welfare is of another year).
    most_years = max((max(p["years"]) for p in planners.values() if p["years"]), default=0)
    complete = [label for label in labels if planners[label]["seeds"] == seeds and all(y == most_years for y in planners[label]["years"])]
    ranked = ranking({label: planners[label]["per_seed"]["welfare"] for label in complete}) if complete else []
    llm = None
    if first.get("llm"):
        llm = {**first["llm"], "usage": _sum_counts([s["llm"]["usage"] for s in summaries]),
               "unfinished_fallback_reasons": _sum_counts([s["llm"].get("unfinished_fallback_reasons", {}) for s in summaries])}
    stopped = next((s["stopped"] for s in summaries if s.get("stopped")), None)
    return {
        "name": first["name"],
        "timings": timings([sum(s["timings"]["wall_s"].get(label, 0.0) for s in summaries) for label in labels], labels),
        "config_fingerprint": first["config_fingerprint"],
        "seeds": seeds,
        "confidence": CONFIDENCE,
        "population": first["population"],
        "calibration": {k: float(np.mean([s["calibration"][k] for s in summaries])) for k in first["calibration"]},
        "welfare": first["welfare"],
        "baseline": BASELINE,
        "llm": llm,
        "stopped": stopped,
        "planners": planners,
        "ranking": ranked,
        "fallback_reasons": _sum_counts([p["fallback_reasons"] for p in planners.values()]),
        "caveats": _caveats(summaries, planners, first.get("llm") is not None),
    }


def _caveats(summaries: Sequence[dict], planners: dict, talks: bool) -> list[str]:
    """The runs' own caveats, then what these seeds add: planner notes, fallbacks, reproducibility."""
    notes = list(dict.fromkeys(c for s in summaries for c in s["caveats"]))
    notes += [f"{label}: {note}" for label, p in planners.items() for note in p["notes"]]
    for label, p in planners.items():
        if p["fallbacks"]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(p["fallback_reasons"].items(), key=lambda kv: -kv[1]))
            notes.append(
                f"{label}: {p['fallbacks']:,} of {p['decisions']:,} language-model decisions and proposals "
                f"({100 * p['fallbacks'] / p['decisions']:.1f}%) fell back ({reasons}); a worker that falls back keeps "
                "its previous hours and a planner its previous parameters, so these figures are partly not the model's choices."
            )
    if talks:
        notes.append(
            "Language-model runs are not reproducible from the seed alone: a server's batching makes sampling "
            "nondeterministic. The response cache (llm_cache.sqlite) is what replays a run exactly: point "
            "llm.cache_path at it and rerun the same config."
        )
    return notes
