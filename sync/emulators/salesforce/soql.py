"""The SOQL subset the emulator answers: a tokenizer and a recursive-descent parser.

Grammar (keywords case-insensitive)::

    query     := SELECT fields FROM name [WHERE condition] [ORDER BY order {, order}]
                 [LIMIT int] [OFFSET int]
    fields    := COUNT() | path {, path}             path := name [. name]
    condition := term {AND term} | term {OR term}    (mixing AND and OR needs parentheses,
    term      := NOT term | ( condition ) | compare   as in Salesforce)
    compare   := path op value | path [NOT] IN ( value {, value} )
    op        := = | != | <> | < | <= | > | >=
    value     := 'string' | number | date | datetime | TRUE | FALSE | NULL
    order     := path [ASC | DESC] [NULLS FIRST | NULLS LAST]

Datetime literals are unquoted (``2025-01-01T00:00:00Z``, ``…+01:00``, ``….000+0000``), date
literals ``2025-01-01``. Syntax errors raise ``MALFORMED_QUERY``; what the parser cannot know
(fields, types) is checked by the evaluator in ``sync.emulators.salesforce.query``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sync.emulators.salesforce.common import malformed, parse_datetime

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "ASC", "DESC",
        "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "COUNT",
    }
)  # fmt: skip
OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">")
PUNCTUATION = "(),"


@dataclass(frozen=True)
class Token:
    kind: str  # word, keyword, string, number, date, datetime, op, punct, end
    text: str
    value: Any = None
    position: int = 0


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: str  # = != < <= > >= IN NOT IN
    values: tuple[Token, ...]


@dataclass(frozen=True)
class Logical:
    op: str  # AND, OR, NOT
    parts: tuple[Condition, ...]


Condition = Compare | Logical


@dataclass(frozen=True)
class Order:
    path: tuple[str, ...]
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    fields: list[tuple[str, ...]]
    source: str
    count_only: bool = False
    where: Condition | None = None
    order: list[Order] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            i = _string(text, i, tokens)
        elif ch in PUNCTUATION:
            tokens.append(Token("punct", ch, position=i))
            i += 1
        elif any(text.startswith(op, i) for op in OPERATORS):
            op = next(op for op in OPERATORS if text.startswith(op, i))
            tokens.append(Token("op", "!=" if op == "<>" else op, position=i))
            i += len(op)
        elif ch.isdigit() or (ch in "-+" and i + 1 < len(text) and text[i + 1].isdigit()):
            i = _literal(text, i, tokens)
        elif ch.isalpha() or ch == "_":
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] in "_."):
                end += 1
            word = text[i:end]
            kind = "keyword" if word.upper() in KEYWORDS else "word"
            tokens.append(Token(kind, word.upper() if kind == "keyword" else word, position=i))
            i = end
        else:
            raise malformed(f"unexpected token: '{ch}' at column {i + 1}")
    tokens.append(Token("end", "", position=len(text)))
    return tokens


def _string(text: str, start: int, tokens: list[Token]) -> int:
    chars: list[str] = []
    i = start + 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"'}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            chars.append(escapes.get(nxt, "\\" if nxt == "\\" else "\\" + nxt))
            i += 2
            continue
        if ch == "'":
            tokens.append(Token("string", text[start : i + 1], "".join(chars), start))
            return i + 1
        chars.append(ch)
        i += 1
    raise malformed(f"unterminated string literal at column {start + 1}")


def _literal(text: str, start: int, tokens: list[Token]) -> int:
    """A number, date or datetime: the run of characters such literals are made of."""
    end = start + 1
    while end < len(text) and (text[end].isalnum() or text[end] in ".:+-"):
        end += 1
    raw = text[start:end]
    if "T" in raw:
        moment = parse_datetime(raw)
        if moment is None:
            raise malformed(f"invalid datetime literal: {raw}")
        tokens.append(Token("datetime", raw, moment, start))
    elif raw.count("-") == 2 and not raw.startswith("-"):
        try:
            tokens.append(Token("date", raw, dt.date.fromisoformat(raw), start))
        except ValueError:
            raise malformed(f"invalid date literal: {raw}") from None
    else:
        try:
            number = float(raw)
        except ValueError:
            raise malformed(f"unexpected token: '{raw}'") from None
        tokens.append(Token("number", raw, number, start))
    return end


class Parser:
    """Recursive descent over the tokens of one query."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    # -- token helpers ---------------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek().kind in {"keyword", "punct", "op"} and self.peek().text == text:
            self.at += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            found = self.peek().text or "end of query"
            raise malformed(f"expecting '{text}', found '{found}'")

    # -- grammar ---------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect("SELECT")
        count_only, fields = self.field_list()
        self.expect("FROM")
        source = self.take()
        if source.kind != "word" or "." in source.text:
            raise malformed(f"unexpected token: '{source.text or 'end of query'}'")
        query = Query(fields, source.text, count_only)
        if self.accept("WHERE"):
            query.where = self.condition()
        if self.accept("ORDER"):
            self.expect("BY")
            query.order = [self.order()]
            while self.accept(","):
                query.order.append(self.order())
        if self.accept("LIMIT"):
            query.limit = self.integer("LIMIT")
        if self.accept("OFFSET"):
            query.offset = self.integer("OFFSET")
        if self.peek().kind != "end":
            raise malformed(f"unexpected token: '{self.peek().text}'")
        return query

    def field_list(self) -> tuple[bool, list[tuple[str, ...]]]:
        if self.accept("COUNT"):
            self.expect("(")
            self.expect(")")
            return True, []
        fields = [self.path()]
        while self.accept(","):
            fields.append(self.path())
        return False, fields

    def path(self) -> tuple[str, ...]:
        token = self.take()
        if token.kind != "word":
            raise malformed(f"unexpected token: '{token.text or 'end of query'}'")
        parts = tuple(token.text.split("."))
        if len(parts) > 2 or not all(parts):
            raise malformed(f"unexpected token: '{token.text}'")
        return parts

    def condition(self) -> Condition:
        parts = [self.term()]
        joiner = None
        while self.peek().kind == "keyword" and self.peek().text in {"AND", "OR"}:
            op = self.take().text
            if joiner is not None and op != joiner:
                raise malformed("unexpected token: 'OR'" if op == "OR" else "unexpected 'AND'")
            joiner = op
            parts.append(self.term())
        return parts[0] if joiner is None else Logical(joiner, tuple(parts))

    def term(self) -> Condition:
        if self.accept("NOT"):
            return Logical("NOT", (self.term(),))
        if self.accept("("):
            inner = self.condition()
            self.expect(")")
            return inner
        path = self.path()
        if self.accept("NOT"):
            self.expect("IN")
            return Compare(path, "NOT IN", self.value_list())
        if self.accept("IN"):
            return Compare(path, "IN", self.value_list())
        token = self.take()
        if token.kind != "op":
            raise malformed(f"unexpected token: '{token.text or 'end of query'}'")
        return Compare(path, token.text, (self.value(),))

    def value_list(self) -> tuple[Token, ...]:
        self.expect("(")
        values = [self.value()]
        while self.accept(","):
            values.append(self.value())
        self.expect(")")
        return tuple(values)

    def value(self) -> Token:
        token = self.take()
        if token.kind in {"string", "number", "date", "datetime"}:
            return token
        if token.kind == "keyword" and token.text in {"TRUE", "FALSE", "NULL"}:
            return token
        raise malformed(f"unexpected token: '{token.text or 'end of query'}'")

    def order(self) -> Order:
        path = self.path()
        descending = False
        if self.accept("DESC"):
            descending = True
        else:
            self.accept("ASC")
        nulls_last = False
        if self.accept("NULLS"):
            if self.accept("LAST"):
                nulls_last = True
            else:
                self.expect("FIRST")
        return Order(path, descending, nulls_last)

    def integer(self, clause: str) -> int:
        token = self.take()
        if token.kind != "number" or not token.text.isdigit():
            raise malformed(f"{clause} must be a non-negative integer, found '{token.text}'")
        return int(token.text)


def parse(text: str) -> Query:
    """The parsed query; ``MALFORMED_QUERY`` when it is not in the subset."""
    return Parser(text).parse()
