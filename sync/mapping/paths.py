"""Reading and writing vendor field paths.

A path is a dotted string. Reading tries the **literal key first, then nesting**, at every level:
``custom.cf_X`` finds Close's flat key ``"custom.cf_X"`` (Close puts custom fields on the object
as flat keys that contain a dot — https://developer.close.com/api/resources/custom-fields), and
``opportunityStage.id`` finds ``{"opportunityStage": {"id": …}}``. When both a literal key and a
nested path could match, the longest literal key wins (``a.b`` before ``a`` → ``b``).

Writing cannot guess, so it is explicit: by default a dotted write path nests
(``{"account": {"id": …}}``, as Truto and Ruddr expect); with ``flat=True`` the whole path is
one literal key (``{"custom.cf_X": …}``, as Close expects). The mapping spec decides which per
field (``write_flat``; on by default for ``custom.`` paths of a ``close`` system).

A missing key and an explicit ``null`` both read as ``None``: vendors omit unset fields (Close
drops unset custom fields from the object), and treating the absence as "unknown" would make a
cleared field impossible to see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def get_path(data: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (literal key first, then nesting), ``None`` when absent."""
    if path in data:
        return data[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        child = data.get(head)
        if isinstance(child, Mapping):
            found = get_path(child, ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """``get_path(·, path)`` with the path taken apart once: the mapper reads every field of
    every captured deal through one. A plain key is one look-up; ``a.b`` the literal key,
    else ``b`` of the object at ``a``; a longer path goes through ``get_path``."""
    if "." not in path:
        return lambda data: data.get(path)
    head, _, leaf = path.partition(".")
    if "." in leaf:
        return lambda data: get_path(data, path)

    def nested(data: Mapping[str, Any]) -> Any:
        if path in data:
            return data[path]
        child = data.get(head)
        return child.get(leaf) if isinstance(child, Mapping) else None

    return nested


def set_path(
    payload: MutableMapping[str, Any], path: str, value: Any, *, flat: bool = False
) -> None:
    """Set ``value`` at ``path`` in a write payload: one literal key when ``flat``, else nested.

    Nested writes merge into objects already in the payload, so two fields can share a parent
    (``stage.id`` and ``stage.name``); a non-object in the way is a programming error.
    """
    if flat:
        payload[path] = value
        return
    *parents, leaf = path.split(".")
    target = payload
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, MutableMapping):
            raise ValueError(f"cannot nest {path!r}: {part!r} already holds {child!r}")
        target = child
    target[leaf] = value
