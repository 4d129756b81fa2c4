"""Reading the adapter's own YAML configuration files (rules, routing table, letter rules)
with located errors.

YAML is read with line numbers, without implicit dates (a date stays a string, so the
checker can name the key of a bad one) and refusing duplicate keys. Every check raises
:class:`adapter.errors.ConfigError` with one ``GGOP-E501`` issue whose XPath field is
``<file>#<key path>`` and whose line is the line in that file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from adapter.errors import ConfigError, issue

# --------------------------------------------------------------------------------------------
# YAML with line numbers, without implicit dates, refusing duplicate keys
# --------------------------------------------------------------------------------------------


class YamlMap(dict):
    line: int | None = None
    key_lines: dict


class YamlSeq(list):
    line: int | None = None
    item_lines: list


class _SafeLineLoader(yaml.SafeLoader):
    pass


# Dates stay strings: the loader checks them and names the key of a bad one.
_SafeLineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_map(loader: _SafeLineLoader, node: yaml.MappingNode) -> YamlMap:
    loader.flatten_mapping(node)
    out = YamlMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise yaml.constructor.ConstructorError(None, None, "a key must be a string", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _SafeLineLoader, node: yaml.SequenceNode) -> YamlSeq:
    out = YamlSeq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_SafeLineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_SafeLineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


# --------------------------------------------------------------------------------------------
# Locations and checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """A place in a rule file: file name, key path and line."""

    file: str
    path: str = ""
    line: int | None = None

    def key(self, container: Any, k: str) -> At:
        lines = getattr(container, "key_lines", None) or {}
        line = lines.get(k, getattr(container, "line", None) or self.line)
        return At(self.file, f"{self.path}.{k}" if self.path else str(k), line)

    def item(self, container: Any, i: int) -> At:
        lines = getattr(container, "item_lines", None)
        line = lines[i] if lines and i < len(lines) else self.line
        return At(self.file, f"{self.path}[{i}]", line)

    @property
    def ref(self) -> str:
        return f"{self.file}#{self.path or '/'}"

    def fail(self, what: str) -> NoReturn:
        raise ConfigError(issue("GGOP-E501", self.line, self.ref, what))


def as_mapping(value: Any, at: At) -> dict:
    if not isinstance(value, dict):
        at.fail(f"expected a mapping, got {kind_of(value)}")
    return value


def as_list(value: Any, at: At, *, nonempty: bool = True) -> list:
    if not isinstance(value, list):
        at.fail(f"expected a list, got {kind_of(value)}")
    if nonempty and not value:
        at.fail("must not be empty")
    return value


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", YamlMap: "a mapping", list: "a list", YamlSeq: "a list", str: "a string",
            bool: "true/false", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def check_keys(m: dict, at: At, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    required = tuple(required)
    allowed = set(required) | set(optional)
    for k in m:
        if k not in allowed:
            at.key(m, k).fail(f"unknown key '{k}'; allowed: {', '.join(sorted(allowed))}")
    for k in required:
        if k not in m:
            at.key(m, k).fail(f"missing key '{k}'")


def as_str(value: Any, at: At) -> str:
    if not isinstance(value, str) or not value.strip():
        at.fail(f"expected a non-empty string, got {kind_of(value)}")
    return value.strip()


def as_int(value: Any, at: At, lo: int | None = None, hi: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        at.fail(f"expected a whole number, got {kind_of(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        at.fail(f"must be between {lo} and {hi}" if hi is not None else f"must be at least {lo}")
    return value


def as_bool(value: Any, at: At) -> bool:
    if not isinstance(value, bool):
        at.fail(f"expected true or false, got {kind_of(value)}")
    return value


def as_choice(value: Any, at: At, allowed: Sequence[str]) -> str:
    if value not in allowed:
        at.fail(f"'{value}' is not one of: {', '.join(allowed)}")
    return value


def as_str_list(value: Any, at: At, *, lower: bool = False) -> tuple[str, ...]:
    items = as_list(value, at)
    out = []
    for i, v in enumerate(items):
        s = as_str(v, at.item(items, i))
        out.append(s.lower() if lower else s)
    return tuple(out)


def read_yaml(path: Path) -> tuple[dict, At]:
    at = At(str(path))
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        at.fail(f"cannot read the file ({type(exc).__name__})")
    try:
        data = yaml.load(text, Loader=_SafeLineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(issue("GGOP-E501", line, at.ref, f"YAML: {exc.problem or exc.context}")) from None
    except yaml.YAMLError as exc:
        at.fail(f"YAML: {type(exc).__name__}")
    if data is None:
        at.fail("the file is empty")
    return as_mapping(data, at), at
