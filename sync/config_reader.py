"""Reading config.yaml: YAML to plain data with the line of every key, ``${VAR}``
interpolation, literal secrets refused; and the problem type every config error is reported
as (``config.yaml:14 systems.close.poll_every: expected …, got …``). ``sync.config`` validates
what this reads."""

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
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            found = getattr(exc, "problem", None) or str(exc)
            self.problem((), "valid YAML", str(found), line)
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
            return self._constructor.construct_object(node)
        text = str(node.value)
        if is_secret and "${" not in text and text != "":
            self._literal_secret(path)
            return text
        return self._interpolate(text, path)

    def _literal_secret(self, path: KeyPath) -> None:
        name = re.sub(r"[^A-Z0-9]+", "_", "_".join(str(p) for p in path[1:2] + path[-1:]).upper())
        self.problem(
            path, f"an environment variable reference like ${{{name}}}", "a literal secret"
        )

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


def is_credential(path: KeyPath) -> bool:
    return len(path) >= 4 and path[0] == "systems" and path[2] == "credentials"
