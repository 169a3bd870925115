"""Usage accounting over parts of a run: what a stretch of calls spent, and sums of such parts,
so a run's totals add up over tax years, resumes and seeds (`Usage.as_dict()` snapshots)."""

from __future__ import annotations


def usage_spent(after: dict, before: dict) -> dict:
    """The counters spent between two snapshots of one client."""
    spent = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int)}
    if after.get("cost_usd") is not None:
        spent["cost_usd"] = after["cost_usd"] - (before.get("cost_usd") or 0.0)
    spent["by_tag"] = {
        tag: {k: v - before.get("by_tag", {}).get(tag, {}).get(k, 0) for k, v in row.items()}
        for tag, row in after.get("by_tag", {}).items()
    }
    return spent


def add_usage(total: dict, more: dict) -> dict:
    """`total` + `more`, counter by counter and tag by tag (a missing cost counts as none)."""
    out = dict(total)
    for key, value in more.items():
        if key == "by_tag":
            tags = {t: dict(row) for t, row in out.get("by_tag", {}).items()}
            for tag, row in value.items():
                tags[tag] = {k: tags.get(tag, {}).get(k, 0) + v for k, v in row.items()}
            out["by_tag"] = tags
        elif value is not None:
            out[key] = (out.get(key) or 0) + value
    return out
