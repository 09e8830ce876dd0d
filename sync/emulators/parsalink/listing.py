"""The ParsaLink emulator's lists: DRF page / limit / offset pagination and filter values.

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse

from sync.emulators.parsalink.common import MAX_PAGE_SIZE, PAGE_SIZE, Invalid, Record


def paginate(request: Request, items: Sequence[Any], render: Callable[[Any], Any]) -> JSONResponse:
    """DRF-style page/limit/offset pagination with absolute next/previous URLs."""
    params, url = request.query_params, request.url
    limit = min(_positive_int(params.get("limit"), PAGE_SIZE), MAX_PAGE_SIZE)
    count = len(items)
    if "offset" in params:
        offset = _positive_int(params.get("offset"), 0, allow_zero=True)
        start = offset
        nxt = _replace(url, "offset", offset + limit) if offset + limit < count else None
        prev = None
        if offset > 0:
            back = offset - limit
            prev = _replace(url, "offset", None if back <= 0 else back)
    else:
        page = _page_number(params.get("page"), max(1, math.ceil(count / limit)))
        start = (page - 1) * limit
        nxt = _replace(url, "page", page + 1) if start + limit < count else None
        prev = None
        if page > 1:
            prev = _replace(url, "page", None if page == 2 else page - 1)
    return JSONResponse(
        {
            "count": count,
            "next": nxt,
            "previous": prev,
            "results": [render(item) for item in items[start : start + limit]],
        }
    )


def created_key(record: Record) -> tuple[Any, str]:
    return (record["createdAt"], record["id"])


def _replace(url: URL, key: str, value: int | None) -> str:
    """DRF's ``replace_query_param`` / ``remove_query_param``: set or drop one parameter and
    re-encode the query with its keys sorted, on the request's absolute URL."""
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != key]
    if value is not None:
        query.append((key, str(value)))
    return str(url.replace(query=urlencode(sorted(query))))


def equals(key: str, wanted: str) -> Callable[[Record], bool]:
    return lambda record: bool(record[key] == wanted)


def _positive_int(raw: str | None, default: int, *, allow_zero: bool = False) -> int:
    """DRF's ``_positive_int``: anything unparsable or out of range gives the default."""
    if raw is None or not re.fullmatch(r"\d+", raw):
        return default
    value = int(raw)
    return value if value > 0 or (allow_zero and value == 0) else default


def _page_number(raw: str | None, last: int) -> int:
    if raw is None:
        return 1
    if raw == "last":
        return last
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= last:
        raise Invalid(404, {"detail": "Invalid page."})
    return int(raw)


def choice(key: str, value: str, choices: Any, *, show: bool = True) -> str:
    if value in choices:
        return value
    shown = value if show else "That choice"
    raise Invalid(
        400, {key: [f"Select a valid choice. {shown} is not one of the available choices."]}
    )


def query_date(key: str, raw: str) -> str:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return dt.date.fromisoformat(raw).isoformat()
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise Invalid(400, {key: ["Enter a valid date."]}) from None


def query_number(key: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise Invalid(400, {key: ["Enter a number."]})
    return value
