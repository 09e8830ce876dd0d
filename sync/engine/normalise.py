"""How names and companies are compared: casefolded, accents and punctuation removed, legal
forms dropped from company names. One module, imported by the first-run match, verify's twins,
doctor and the company references, so they all agree on when two names are "the same" (and so
``engine.context`` needs no import of the matching engine)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

#: legal-form words dropped from the end of a company name before comparing
COMPANY_SUFFIXES = frozenset(
    {
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "gmbh",
        "corp",
        "corporation",
        "co",
        "company",
        "plc",
        "ag",
        "sa",
        "sarl",
        "bv",
        "nv",
        "pty",
        "srl",
        "oy",
        "ab",
    }
)
_PUNCTUATION = re.compile(r"[^\w]+")


def normalise_text(value: Any) -> str:
    """Casefolded, accents and punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", str(value))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).replace("_", " ").split())


def normalise_company(value: Any) -> str:
    """``normalise_text`` without trailing legal-form suffixes (``Hooli, Inc.`` → ``hooli``)."""
    words = normalise_text(value).split()
    while len(words) > 1 and words[-1] in COMPANY_SUFFIXES:
        words.pop()
    return " ".join(words)


def same_company_key(name: str, keys: Iterable[str]) -> str | None:
    """The one key of ``keys`` naming the same company as ``name`` (equal but for case,
    accents, punctuation and a legal-form suffix); None when none or several do."""
    keys = list(keys)
    exact = {key for key in keys if key.strip().casefold() == name.strip().casefold()}
    if len(exact) == 1:
        return exact.pop()
    wanted = normalise_company(name)
    found = {key for key in keys if normalise_company(key) == wanted}
    return found.pop() if len(found) == 1 else None
