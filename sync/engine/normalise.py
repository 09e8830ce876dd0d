"""How names and companies are compared: casefolded, accents and punctuation removed, legal
forms dropped from company names. One module, imported by the first-run match, verify's twins,
doctor and the company references, so they all agree on when two names are "the same" (and so
``engine.context`` needs no import of the matching engine)."""

from __future__ import annotations

import re
import unicodedata
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


class CompanyNames:
    """A growing set of company names that answers "which one names the same company as
    this?" in O(1): each name is indexed by its casefold and (from the first question that
    needs it) by ``normalise_company``. Not locked: the caller serialises ``add`` and ``same``."""

    def __init__(self) -> None:
        self._by_fold: dict[str, set[str]] = {}
        self._by_company: dict[str, set[str]] | None = None

    def add(self, name: str) -> None:
        self._by_fold.setdefault(name.strip().casefold(), set()).add(name)
        if self._by_company is not None:
            self._by_company.setdefault(normalise_company(name), set()).add(name)

    def same(self, name: str) -> str | None:
        """The one name naming the same company as ``name`` (equal but for case, accents,
        punctuation and a legal-form suffix; one equal but for case first); None when none or
        several do."""
        exact = self._by_fold.get(name.strip().casefold(), set())
        if len(exact) == 1:
            return next(iter(exact))
        if self._by_company is None:
            self._by_company = {}
            for names in self._by_fold.values():
                for each in names:
                    self._by_company.setdefault(normalise_company(each), set()).add(each)
        found = self._by_company.get(normalise_company(name), set())
        return next(iter(found)) if len(found) == 1 else None
