"""Reading config.yaml: YAML to plain data with the line of every key, ``${VAR}``
interpolation, literal secrets refused; and the problem type every config error is reported
as (``config.yaml:14 systems.close.poll_every: expected …, got …``). The rest of
``sync.config`` validates what this reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# --------------------------------------------------------------------------- errors

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a config file: where it is, what was expected and what was found."""

    location: str  # "config.yaml:14", or "$CRMSYNC_DATABASE_URL" for an env override
    path: KeyPath
    expected: str
    found: str

    @property
    def key(self) -> str:
        """The key path as people write it: ``systems.close.poll_every``, ``priority[2]``."""
        return format_key_path(self.path)

    def __str__(self) -> str:
        where = f"{self.location} {self.key}" if self.path else self.location
        return f"{where}: expected {self.expected}, got {self.found}"


def format_key_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every mistake found, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def found_text(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


# --------------------------------------------------------------------------- YAML reading

_INTERPOLATION = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.DOTALL)
#: a credential is one reference and nothing else: text around it would be a literal secret
_WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}")

#: values that aliases (``*name``, ``<<: *name``) may add to a file once expanded. A real config
#: has a few hundred values; a "billion laughs" file would expand to billions of them.
MAX_ALIAS_VALUES = 10_000


class AliasLimitError(yaml.composer.ComposerError):
    """A YAML alias that would expand the file past :data:`MAX_ALIAS_VALUES`, or into itself."""

    def __init__(self, expected: str, found: str, mark: Any) -> None:
        super().__init__(None, None, found, mark)
        self.expected = expected


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses alias bombs while composing, before anything is expanded.

    Composing keeps one node per anchor (aliases share it), so it is cheap; the cost comes
    when the tree is walked. Each node's size (values once aliases are expanded) is known when
    it is composed, so every alias adds its anchor's size to a budget, and the first alias
    over it fails at its own line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._expanded = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                self._count_alias(event, anchored)
            return super().compose_node(parent, index)
        node: yaml.Node | None = super().compose_node(parent, index)
        if node is not None:
            children = _children(node)
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(c), 1) for c in children)
        return node

    def _count_alias(self, event: Any, anchored: yaml.Node) -> None:
        size = self._sizes.get(id(anchored))
        if size is None:  # the anchor is still being composed: the alias is inside it
            raise AliasLimitError(
                "no alias inside its own anchor",
                f"*{event.anchor} inside &{event.anchor} (a recursive structure)",
                event.start_mark,
            )
        self._expanded += size
        if self._expanded > MAX_ALIAS_VALUES:
            raise AliasLimitError(
                f"at most {MAX_ALIAS_VALUES} values added by aliases (*name)",
                f"*{event.anchor} taking the file past that (an alias bomb?)",
                event.start_mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class Reader:
    """Turns YAML into plain data, remembering the line of every key and interpolating env."""

    def __init__(self, location: str, env: Mapping[str, str]) -> None:
        self.location = location
        self.env = env
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[ConfigProblem] = []
        self.sources: dict[KeyPath, str] = {}  # values that came from CRMSYNC_* overrides
        self.reported: set[KeyPath] = set()  # paths with a problem already (one is enough)
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, path: KeyPath, expected: str, found: str, line: int | None = None) -> None:
        where = f"{self.location}:{line if line is not None else self.line_of(path)}"
        self.problems.append(ConfigProblem(where, path, expected, found))
        self.reported.add(path)

    def line_of(self, path: KeyPath) -> int:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def apply_overrides(self, data: dict[str, Any], overrides: Mapping[str, str]) -> None:
        """``{VARIABLE: section}``: a set variable replaces ``section.url``."""
        for variable, section in overrides.items():
            value = self.env.get(variable)
            if value is None:
                continue
            current = data.get(section)
            target = current if isinstance(current, dict) else {}
            target["url"] = value
            data[section] = target
            self.sources[(section, "url")] = f"${variable}"

    def read(self, text: str) -> Any:
        try:
            node = yaml.compose(text, Loader=_BoundedLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            found = getattr(exc, "problem", None) or str(exc)
            expected = exc.expected if isinstance(exc, AliasLimitError) else "valid YAML"
            self.problem((), expected, str(found), line)
            return None
        if node is None:
            return {}
        self.lines[()] = node.start_mark.line + 1
        return self._value(node, ())

    def _value(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._value(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        explicit = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        self._constructor.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        explicit_ids = {id(key) for key, _ in explicit}
        merged = [pair for pair in node.value if id(pair[0]) not in explicit_ids]
        out: dict[str, Any] = {}
        for key_node, value_node in explicit:
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in out:
                first = self.lines[(*path, key)]
                line = key_node.start_mark.line + 1
                self.problem(
                    (*path, key), "each key once", f"a duplicate (first on line {first})", line
                )
                continue
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self._value(value_node, (*path, key))
        for key_node, value_node in merged:  # keys written out win over merged ones
            key = self._key(key_node, path)
            if key is not None and key not in out:
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self._value(value_node, (*path, key))
        return out

    def _key(self, node: yaml.Node, path: KeyPath) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        line = node.start_mark.line + 1
        self.problem(path, "a plain key", "a mapping or list used as a key", line)
        return None

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        is_secret = is_credential(path)
        if node.tag != "tag:yaml.org,2002:str":
            if is_secret:
                self._literal_secret(path)
            return self._construct(node, path)
        text = str(node.value)
        if is_secret and text != "" and not _WHOLE_REFERENCE.fullmatch(text.strip()):
            # Literal text around a reference is a secret written into the file all the same.
            self._literal_secret(path, around="${" in text)
            return text
        return self._interpolate(text, path)

    def _construct(self, node: yaml.Node, path: KeyPath) -> Any:
        """A non-string scalar (number, boolean, null, date); an explicit tag that does not fit
        its text (``!!int abc``) or that safe YAML does not know is a problem, not a crash."""
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)  # may quote the value
            line = node.start_mark.line + 1
            if any(looks_secret(part) for part in path if isinstance(part, str)):
                found = "a value (not shown: it may be a secret)"
            else:
                found = f"{node.tag} {node.value!r} ({problem})"
            self.problem(path, "a value safe YAML can read", found, line)
            return None

    def _literal_secret(self, path: KeyPath, *, around: bool = False) -> None:
        name = re.sub(r"[^A-Z0-9]+", "_", "_".join(str(p) for p in path[1:2] + path[-1:]).upper())
        if around:
            expected = f"only an environment variable reference like ${{{name}}}"
            found = "literal text around it (a literal secret)"
        else:
            expected = f"an environment variable reference like ${{{name}}}"
            found = "a literal secret"
        self.problem(path, expected, found)

    def _interpolate(self, text: str, path: KeyPath) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            inner = match.group(1)
            reference = _REFERENCE.fullmatch(inner) if inner is not None else None
            if reference is None:
                self.problem(path, "${NAME} or ${NAME:-default}", f'"{match.group(0)}"')
                return match.group(0)
            name, operator, default = reference.groups()
            value = self.env.get(name)
            if operator == ":-" and not value:
                return default or ""
            if operator == "-" and value is None:
                return default or ""
            if value is None:
                self.problem(
                    path, f"environment variable {name} to be set", "it unset (and no default)"
                )
                return ""
            return value

        return _INTERPOLATION.sub(replace, text)


_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "auth", "cookie")


def looks_secret(key: object) -> bool:
    """Whether a key name says its value is a secret (``api_key``, ``X-Auth-Token``…)."""
    text = str(key).lower()
    return any(word in text for word in _SECRET_WORDS)


def is_credential(path: KeyPath) -> bool:
    return len(path) >= 4 and path[0] == "systems" and path[2] == "credentials"
