"""Deterministic one-sentence persona descriptions built from a population's fields.

    A 34-year-old married woman in Texas with a bachelor's degree, working as a registered
    nurse and earning about $41 an hour; household of 3 with 1 child.

``persona_text(row)`` describes one agent (a table row, a mapping or a namedtuple);
``persona_texts(population)`` describes them all with column-wise string operations, so a
million agents take seconds. Both give the same string for the same agent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import pandas as pd

from .population import Population, state_name

__all__ = ["persona_text", "persona_texts", "occupation_phrase"]

EDUCATION_PHRASES = {
    "less than high school": "without a high school diploma",
    "high school": "with a high school diploma",
    "some college": "with some college",
    "associate degree": "with an associate degree",
    "bachelor's degree": "with a bachelor's degree",
    "master's degree": "with a master's degree",
    "professional degree": "with a professional degree",
    "doctorate": "with a doctorate",
}
SEX_NOUNS = {"female": "woman", "male": "man"}

# Qualifiers that narrow an SOC title without naming the worker.
_QUALIFIER = re.compile(r",\s+(Except|All Other|Including)\b.*$")
# Words ending in "s" that are not plurals.
_NOT_PLURAL = {"sales", "series", "species", "news", "arts", "athletics", "economics", "electronics",
               "mathematics", "physics", "logistics", "statistics", "services", "goods", "gas",
               "glass", "press", "class", "business", "wellness", "fitness", "canvas", "grass"}
_FIELDS = ("age", "marital_status", "sex", "state", "education", "occupation", "hourly_wage",
           "household_size", "children")


def _singular(word: str) -> str:
    low = word.lower()
    if low in _NOT_PLURAL or not low.endswith("s") or low.endswith("ss") or len(low) < 4:
        return word
    if low.endswith("wives"):  # midwives
        return word[:-3] + "fe"
    if low.endswith("ies"):
        return word[:-3] + "y"
    if low.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    return word[:-1]


@lru_cache(maxsize=4096)
def occupation_phrase(title: str) -> str:
    """An SOC occupation title as a singular, lower-case noun phrase with its article.

    "Registered Nurses" -> "a registered nurse"; "Cooks, Restaurant" -> "a restaurant cook";
    "Accountants and Auditors" -> "an accountant and auditor". Qualifiers such as ", Except ..."
    and ", All Other" are dropped; modifiers after the head noun move in front of it.
    """
    title = title.strip()
    if title in _PHRASE_OVERRIDES:
        return _PHRASE_OVERRIDES[title]
    if title.startswith("Helpers--"):
        return "a helper to " + _lower(title[len("Helpers--"):])
    text = _QUALIFIER.sub("", title)
    parts = text.split(", ")
    if len(parts) >= 2:
        last = parts[-1]
        if not last.startswith(("and ", "or ")):
            # "Cooks, Restaurant" / "..., Metal and Plastic": one trailing modifier.
            text = f"{last} {', '.join(parts[:-1])}"
        elif _singular(last.split()[-1]) == last.split()[-1]:
            # "Insulation Workers, Floor, Ceiling, and Wall": a trailing list of modifiers.
            text = f"{', '.join(parts[1:])} {parts[0]}"
    tokens = re.findall(r"[^\s,]+|,", text)
    out = []
    complement = False  # words after "of" describe the object, not the worker
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.lower() == "of":
            complement = True
        at_break = nxt is None or nxt in {",", "and", "or", "of", "&"}
        out.append(_singular(tok) if at_break and not complement and tok != "," else tok)
    phrase = _lower(" ".join(out).replace(" ,", ","))
    if phrase.endswith(" occupation"):  # "Computer Occupations, All Other"
        phrase = phrase[: -len("occupation")] + "worker"
    return f"{_article(phrase)} {phrase}"


_PHRASE_OVERRIDES = {
    "Physicians, Pathologists": "a pathologist",
    "Clergy": "a member of the clergy",
    "Transit and Railroad Police": "a transit and railroad police officer",
    "Entertainers and Performers, Sports and Related Workers, All Other":
        "an entertainer, performer or sports worker",
    "Sales Representatives, Wholesale and Manufacturing, Technical and Scientific Products":
        "a wholesale and manufacturing sales representative for technical and scientific products",
    "Pressers, Textile, Garment, and Related Materials": "a textile and garment presser",
    "Farmworkers, Farm, Ranch, and Aquacultural Animals":
        "a farmworker with farm, ranch, and aquacultural animals",
}
_KEEP_CASE = {"english": "English"}


def _lower(text: str) -> str:
    words = [w if (w.isupper() and len(w) > 1) else _KEEP_CASE.get(w.lower(), w.lower()) for w in text.split(" ")]
    return " ".join(words)


def _article(phrase: str) -> str:
    if phrase.startswith(("uni", "uti", "use", "usu", "eu", "one")):
        return "a"
    return "an" if phrase[:1] in "aeiou" else "a"


def _household_phrase(size: int, children: int, earners: int) -> str:
    if size <= 1 and children == 0:
        return "lives alone"
    kids = "no children" if children == 0 else ("1 child" if children == 1 else f"{children} children")
    two = "two-earner household" if earners >= 2 else "household"
    return f"{two} of {size} with {kids}"


def _get(row, field):
    if isinstance(row, Mapping) or isinstance(row, pd.Series):
        return row[field]
    return getattr(row, field)


def persona_text(row, wage: bool = True) -> str:
    """Describe one agent. ``row`` has the Population columns (Series, mapping or namedtuple);
    a missing ``earners`` column counts the agent as its household's only earner. Without
    ``wage`` the sentence leaves the hourly wage out (a prompt that states it elsewhere)."""
    try:
        earners = int(_get(row, "earners"))
    except (KeyError, AttributeError):
        earners = 1
    age = int(_get(row, "age"))
    marital = str(_get(row, "marital_status"))
    sex = SEX_NOUNS.get(str(_get(row, "sex")), str(_get(row, "sex")))
    state = state_name(str(_get(row, "state")))
    education = EDUCATION_PHRASES.get(str(_get(row, "education")), f"with {_get(row, 'education')}")
    job = occupation_phrase(str(_get(row, "occupation")))
    home = _household_phrase(int(_get(row, "household_size")), int(_get(row, "children")), earners)
    pay = f" and earning about ${float(_get(row, 'hourly_wage')):,.0f} an hour" if wage else ""
    return f"A {age}-year-old {marital} {sex} in {state} {education}, working as {job}{pay}; {home}."


def persona_texts(population: Population, wage: bool = True) -> list[str]:
    """Describe every agent of ``population``, in row order, column-wise (``wage`` as in persona_text)."""
    t = population.table
    if len(t) == 0:
        return []
    missing = [f for f in _FIELDS if f not in t.columns]
    if missing:
        raise ValueError(f"population table lacks the columns {missing} needed for persona text")

    def mapped(col: str, fn) -> pd.Series:
        # Apply fn once per distinct value, then broadcast: the cost is per category, not per agent.
        values = t[col].astype("category")
        codes = values.cat.codes.to_numpy()
        if (codes < 0).any():
            raise ValueError(f"population column {col!r} has missing values; persona text needs every field")
        phrases = np.asarray([fn(c) for c in values.cat.categories], dtype=object)
        return pd.Series(phrases[codes], index=t.index)

    earners = t["earners"].to_numpy() if "earners" in t.columns else np.ones(len(t), np.int64)
    size = t["household_size"].to_numpy().astype(np.int64)
    kids = t["children"].to_numpy().astype(np.int64)
    earners = earners.astype(np.int64)
    # One integer key per (size, children, earners) so the phrase is built once per distinct triple.
    keys, inverse = np.unique((size * 1000 + kids) * 10 + earners, return_inverse=True)
    phrases = [_household_phrase(int(k // 10000), int(k // 10 % 1000), int(k % 10)) for k in keys]
    home = pd.Series(np.asarray(phrases, dtype=object)[inverse], index=t.index)
    dollars = pd.Series(np.round(t["hourly_wage"].to_numpy()).astype(np.int64), index=t.index).astype(str)
    # Thousands separators for the rare wage of $1,000/h or more, through the scalar formatter.
    big = t["hourly_wage"].to_numpy() >= 999.5
    if big.any():
        dollars[big] = [f"{w:,.0f}" for w in t["hourly_wage"].to_numpy()[big]]
    text = ("A " + t["age"].astype(np.int64).astype(str) + "-year-old "
            + mapped("marital_status", str) + " "
            + mapped("sex", lambda s: SEX_NOUNS.get(str(s), str(s))) + " in "
            + mapped("state", lambda s: state_name(str(s))) + " "
            + mapped("education", lambda e: EDUCATION_PHRASES.get(str(e), f"with {e}")) + ", working as "
            + mapped("occupation", lambda o: occupation_phrase(str(o)))
            + ((" and earning about $" + dollars + " an hour") if wage else "") + "; " + home + ".")
    return text.tolist()
