"""One progress bar over the planner-years of a run or a whole comparison, with an honest ETA.

A planner-year is one planner playing one tax year in one seed. They do not cost alike: search,
gradient and PPO spend their whole budget in the first year, and a language-model planner's year
costs more than a fixed schedule's. Only the same planner's same year in another seed costs alike
(and, for a planner's later years, its other later years), so the ETA sums those measurements over
the years still to play, and is shown only once every one of them has such a measurement.
"""

from __future__ import annotations

from collections import Counter

from tqdm.auto import tqdm

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} planner-years [{elapsed}{postfix}]"


class YearProgress:
    """Counts planner-years as they finish (`done`) or are found finished on resume (`skip`)."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = tqdm(total=0, desc=description, disable=not enabled, bar_format=BAR_FORMAT)
        self.pending: Counter[tuple[str, int]] = Counter()
        self.seconds: dict[tuple[str, int], list[float]] = {}
        self.where = ""

    def plan(self, label: str, years: int) -> None:
        """A planner's years of one seed are to be played."""
        self.pending.update((label, year) for year in range(years))
        self.bar.total += years
        self.bar.refresh()

    def skip(self, label: str, years: int) -> None:
        """The first `years` of a planner's seed were finished before (a resumed run)."""
        self.pending.subtract((label, year) for year in range(years))
        self.bar.update(years)

    def playing(self, where: str) -> None:
        self.where = where
        self._show()

    def done(self, label: str, year: int, seconds: float) -> None:
        self.pending[(label, year)] -= 1
        self.seconds.setdefault((label, year), []).append(seconds)
        self.bar.update(1)
        self._show()

    def eta_s(self) -> float | None:
        """Seconds left by the measurements of like years; None while some year to play has none."""
        total = 0.0
        for (label, year), count in self.pending.items():
            if count <= 0:
                continue
            like = self.seconds.get((label, year))
            if like is None and year > 0:  # a planner's later years cost alike
                like = [s for (other, y), times in self.seconds.items() if other == label and y > 0 for s in times]
            if not like:
                return None
            total += count * sum(like) / len(like)
        return total

    def _show(self) -> None:
        eta = self.eta_s()
        left = "ETA once every planner has played such a year" if eta is None else f"ETA {tqdm.format_interval(eta)}"
        self.bar.set_postfix_str(f"{self.where}; {left}" if self.where else left)

    def close(self) -> None:
        self.bar.close()
