"""Stopping a run whose language-model replies keep falling back: the server is then not usable,
and playing on would fill the results with fallbacks instead of decisions."""

from __future__ import annotations

from .types import LLMUnavailable


class FallbackMonitor:
    """Stops a run whose language-model replies keep failing: `limit` fallbacks in a row, or every
    decision of a planner's first period (limit 0: never stops)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0

    def observe(self, reasons: list[str | None], first_period: bool = False) -> None:
        """`reasons`: one per decision in order, None where the reply was usable."""
        for reason in reasons:
            self.streak = self.streak + 1 if reason else 0
        failed = [r for r in reasons if r]
        if not self.limit:
            return
        if first_period and reasons and len(failed) == len(reasons):
            counts = ", ".join(f"{r} {failed.count(r)}" for r in sorted(set(failed), key=failed.count, reverse=True))
            raise LLMUnavailable(
                f"every language-model decision of the first period fell back ({counts}); "
                "the server is not usable. Fix it and continue with --resume"
            )
        if self.streak >= self.limit:
            past = "reaching" if self.streak == self.limit else "past"
            raise LLMUnavailable(
                f"{self.streak} language-model decisions in a row fell back (last: {failed[-1] if failed else '?'}), {past} "
                f"the limit llm.max_consecutive_fallbacks = {self.limit} (decisions are counted a period at a time); "
                "the server is not usable. Fix it and continue with --resume"
            )
