"""Usage accounting over parts of a run: what a stretch of calls spent, and sums of such parts,
so a run's totals add up over tax years, resumes and seeds (`Usage.as_dict()` snapshots).
Nested tables (`by_tag`, `by_server`) are counted row by row like the totals."""

from __future__ import annotations


def usage_spent(after: dict, before: dict) -> dict:
    """The counters spent between two snapshots of one client."""
    spent: dict = {}
    for key, value in after.items():
        if isinstance(value, dict):
            spent[key] = usage_spent(value, before.get(key) or {})
        elif key == "cost_usd":
            if value is not None:
                spent[key] = value - (before.get(key) or 0.0)
        elif isinstance(value, int):
            spent[key] = value - before.get(key, 0)
    return spent


def add_usage(total: dict, more: dict) -> dict:
    """`total` + `more`, counter by counter and row by row (a missing cost counts as none)."""
    out = dict(total)
    for key, value in more.items():
        if isinstance(value, dict):
            out[key] = add_usage(out.get(key) or {}, value)
        elif value is not None:
            out[key] = (out.get(key) or 0) + value
    return out
