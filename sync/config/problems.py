"""Turning pydantic's validation errors into config problems people can act on: one per key
path, at the line of that key (or of the env variable that set it), saying what was expected
in words ("a whole number", "one of latest, manual") and what was found, never a secret; an
unknown key gets the known keys of its mapping and the nearest one ("did you mean")."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from sync.config.masking import mask_url
from sync.config.models import Config
from sync.config.reader import ConfigProblem, KeyPath, Reader, found_text, looks_secret

_EXPECTED_BY_TYPE = {
    "missing": "this required key",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "nothing",
}


def pydantic_problems(reader: Reader, data: Any, exc: ValidationError) -> Iterator[ConfigProblem]:
    """One problem per key path: a union's alternatives become one "expected a or b"."""
    grouped: dict[KeyPath, list[tuple[str, str]]] = {}
    for error in exc.errors(include_url=False):
        kind = error["type"]
        path = _data_path(
            data, tuple(error["loc"]), keep_last=kind in ("missing", "extra_forbidden")
        )
        if kind == "extra_forbidden":
            expected, found = _known_keys_hint(path), f'unknown key "{path[-1]}"'
        elif kind == "missing":
            expected, found = _EXPECTED_BY_TYPE[kind], "nothing"
        else:
            expected, found = _expected(error), _shown(path, error.get("input"))
        grouped.setdefault(path, []).append((expected, found))
    for path, alternatives in grouped.items():
        if path in reader.reported:  # e.g. an unset ${VAR} also fails the URL check
            continue
        expected = " or ".join(dict.fromkeys(e for e, _ in alternatives))
        location = reader.sources.get(path, f"{reader.location}:{reader.line_of(path)}")
        yield ConfigProblem(location, path, expected, alternatives[0][1])


def _shown(path: KeyPath, value: object) -> str:
    """What a problem says it found, never a secret: values under secret-looking keys are not
    shown and URLs lose their passwords."""
    if any(looks_secret(part) for part in path if isinstance(part, str)):
        return "a value (not shown: it may be a secret)"
    if isinstance(value, str) and "://" in value:
        return found_text(mask_url(value))
    return found_text(value)


def _data_path(data: Any, loc: KeyPath, *, keep_last: bool) -> KeyPath:
    """``loc`` without the entries pydantic adds for union members (``str``, ``list[str]``)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        found, child = _child(node, part)
        if found or (keep_last and i == len(loc) - 1):
            path.append(part)
            node = child
    return tuple(path)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _expected(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        return "one of " + str(ctx.get("expected", "")).replace("'", "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), "")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", not "greater than 0.0"
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        return f"a number {words} {bound}"
    if kind == "too_short":
        return "a non-empty list"
    return _EXPECTED_BY_TYPE.get(kind, str(error["msg"]))


def _known_keys_hint(path: KeyPath) -> str:
    known = _allowed_keys(path[:-1])
    if not known:
        return "no key here"
    close = difflib.get_close_matches(str(path[-1]), known, n=1)
    listed = ", ".join(known)
    return f'"{close[0]}" (known keys: {listed})' if close else f"one of {listed}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            models = [a for a in typing.get_args(tp) if isinstance(a, type) and a is not type(None)]
            tp = next((a for a in models if issubclass(a, BaseModel)), models[0] if models else tp)
            if typing.get_origin(tp) in (Union, types.UnionType):
                return tp
        else:
            return tp


def _allowed_keys(path: KeyPath) -> list[str]:
    """The keys a mapping at ``path`` accepts, read off the models (for "did you mean")."""
    tp: Any = Config
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _model_field(tp, str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [field.alias or name for name, field in tp.model_fields.items()]
    return []


def _model_field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None
