"""Archetypes: group agents by persona features so that one language-model call serves a group.

k-means (Lloyd's algorithm, seeded k-means++ start) on standardised features: log wage, age,
education rank, household size, children, marital status. Each archetype is voiced by its
representative, the member nearest the centroid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..personas.population import EDUCATION_LEVELS


def persona_features(table: pd.DataFrame) -> np.ndarray:
    """(N, 6) standardised features of the persona table."""
    education = table["education"].astype(str).map({e: i for i, e in enumerate(EDUCATION_LEVELS)}).fillna(1)
    raw = np.column_stack([
        np.log(table["hourly_wage"].to_numpy(float)),
        table["age"].to_numpy(float),
        education.to_numpy(float),
        table["household_size"].to_numpy(float),
        table["children"].to_numpy(float),
        (table["marital_status"].astype(str) == "married").to_numpy(float),
    ])
    std = raw.std(axis=0)
    return (raw - raw.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, K) squared distances without an (N, K, D) intermediate."""
    return np.maximum((x**2).sum(1)[:, None] - 2.0 * x @ centres.T + (centres**2).sum(1)[None, :], 0.0)


def assign_archetypes(table: pd.DataFrame, k: int, seed: int, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), representatives (K',)) with K' <= k non-empty archetypes, labels 0..K'-1."""
    x = persona_features(table)
    n = len(x)
    if not 1 <= k:
        raise ValueError(f"archetypes: k must be at least 1, got {k}")
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):  # k-means++: spread the starting centres
        d2 = _squared_distances(x, np.array(centres)).min(1)
        centres.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(n)])
    centres = np.array(centres)
    for _ in range(iterations):
        labels = _squared_distances(x, centres).argmin(1)
        moved = np.array([x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    labels = _squared_distances(x, centres).argmin(1)
    used = np.unique(labels)
    labels = np.searchsorted(used, labels)
    centres = centres[used]
    distance = ((x - centres[labels]) ** 2).sum(1)
    representatives = np.array([np.flatnonzero(labels == j)[distance[labels == j].argmin()] for j in range(len(used))])
    return labels, representatives
