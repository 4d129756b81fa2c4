"""Navigation over a MedCom element tree that remembers where every value came from.

A :class:`Node` wraps an lxml element together with its XPath of local names
(``/Emessage/RehabilitationPlan/Patient``). Children are found by namespace URI
and local name; a node is created for a *family* of namespaces (G-GOP mixes
``…municipality:1.0.0`` and ``…:1.0.4`` element by element, so its nodes accept
both and leave the exact namespace to the schema check).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

_WS = re.compile(r"\s+")


class Val(NamedTuple):
    """A text value and where it was read (a tuple: made for every leaf, so made cheaply)."""

    value: str
    line: int | None
    xpath: str

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.value


# Tags seen, split (and, per namespace family, their local name or None outside the family).
# A sender chooses its tags: the caches are emptied when they reach this size.
_CACHE_LIMIT = 4096
_FAMILY_LIMIT = 64
_TAGS: dict[str, tuple[str | None, str]] = {}
_FAMILY_NAMES: dict[frozenset[str], dict[str, str | None]] = {}


def _split(tag: str) -> tuple[str | None, str]:
    parts = _TAGS.get(tag)
    if parts is None:
        if tag[:1] == "{":
            ns_, _, name = tag[1:].partition("}")
            parts = (ns_, name)
        else:
            parts = (None, tag)
        if len(_TAGS) >= _CACHE_LIMIT:
            _TAGS.clear()
        _TAGS[tag] = parts
    return parts


def _family_names(namespaces: frozenset[str]) -> dict[str, str | None]:
    names = _FAMILY_NAMES.get(namespaces)
    if names is None or len(names) >= _CACHE_LIMIT:
        if len(_FAMILY_NAMES) >= _FAMILY_LIMIT:  # a family can come from the message (detect.py)
            _FAMILY_NAMES.clear()
        names = _FAMILY_NAMES[namespaces] = {}
    return names


def local(el: etree._Element) -> str:
    return _split(el.tag)[1]


def ns(el: etree._Element) -> str | None:
    return _split(el.tag)[0]


class Node:
    __slots__ = ("_index", "el", "namespaces", "xpath")

    def __init__(self, el: etree._Element, xpath: str, namespaces: frozenset[str]):
        self.el = el
        self.xpath = xpath
        self.namespaces = namespaces
        self._index: dict[str, list[etree._Element]] | None = None

    @classmethod
    def root(cls, el: etree._Element, namespaces: frozenset[str]) -> Node:
        return cls(el, "/" + local(el), namespaces)

    @property
    def line(self) -> int | None:
        return self.el.sourceline

    @property
    def name(self) -> str:
        return local(self.el)

    def _children_by_name(self) -> dict[str, list[etree._Element]]:
        if self._index is None:
            index: dict[str, list[etree._Element]] = {}
            namespaces = self.namespaces
            names = _family_names(namespaces)  # tag → local name, None outside the family
            for child in self.el.iterchildren(etree.Element):  # elements only, no comments or PIs
                tag = child.tag
                name = names.get(tag)
                if name is None and tag not in names:
                    parts = _split(tag)
                    name = names[tag] = parts[1] if parts[0] in namespaces else None
                if name is not None:
                    found = index.get(name)
                    if found is None:
                        index[name] = [child]
                    else:
                        found.append(child)
            self._index = index
        return self._index

    def children(self, name: str) -> list[Node]:
        found = self._children_by_name().get(name, [])
        if len(found) == 1:
            return [Node(found[0], f"{self.xpath}/{name}", self.namespaces)]
        return [Node(c, f"{self.xpath}/{name}[{i}]", self.namespaces) for i, c in enumerate(found, 1)]

    def child(self, name: str) -> Node | None:
        index = self._index
        found = (index if index is not None else self._children_by_name()).get(name)
        if not found:
            return None
        return Node(found[0], f"{self.xpath}/{name}" if len(found) == 1 else f"{self.xpath}/{name}[1]", self.namespaces)

    def path(self, *names: str) -> Node | None:
        node: Node | None = self
        for n in names:
            if node is None:
                return None
            node = node.child(n)
        return node

    def text(self, *names: str) -> Val | None:
        """Trimmed text of a leaf (None when absent or empty)."""
        if len(names) == 1:  # the usual case: a child, its XPath made only when it has text
            name = names[0]
            index = self._index
            found = (index if index is not None else self._children_by_name()).get(name)
            return self._leaf(name, found) if found else None
        node = self.path(*names) if names else self
        if node is None:
            return None
        value = _text_of(node.el)
        if not value:
            return None
        return Val(_WS.sub(" ", value) if "\n" in value else value, node.line, node.xpath)

    def texts(self, names: frozenset[str]) -> dict[str, Val]:
        """``{name: self.text(name)}`` for each of ``names`` whose text is there, in one look."""
        index = self._index
        out = {}
        for name, found in (index if index is not None else self._children_by_name()).items():
            if name in names:
                val = self._leaf(name, found)
                if val is not None:
                    out[name] = val
        return out

    def _leaf(self, name: str, found: list[etree._Element]) -> Val | None:
        """What :meth:`text` reads from the first of the children ``found`` under ``name``."""
        el = found[0]
        value = _text_of(el)
        if not value:
            return None
        return Val(_WS.sub(" ", value) if "\n" in value else value, el.sourceline,
                   f"{self.xpath}/{name}" if len(found) == 1 else f"{self.xpath}/{name}[1]")

    def formatted(self, *names: str) -> Val | None:
        """Formatted MedCom text: Break becomes a newline, other markup keeps its text."""
        node = self.path(*names) if names else self
        if node is None:
            return None
        value = formatted_text(node.el)
        if not value:
            return None
        return Val(value, node.line, node.xpath)


def _text_of(el: etree._Element) -> str:
    """The element's text and its descendants', trimmed."""
    if len(el) == 0:  # no child nodes at all (elements, comments, processing instructions)
        return (el.text or "").strip()
    return "".join(el.itertext()).strip()


def formatted_text(el: etree._Element) -> str:
    if len(el) == 0:  # text alone (the usual case): no markup to walk
        return _lines(el.text or "")
    parts: list[str] = []

    def walk(e: etree._Element) -> None:
        if e.text:
            parts.append(e.text)
        for c in e:
            if isinstance(c.tag, str):
                name = local(c)
                if name in ("Break", "br"):
                    parts.append("\n")
                elif name == "Space":
                    parts.append(" ")
                else:
                    walk(c)
            if c.tail:
                parts.append(c.tail)

    walk(el)
    return _lines("".join(parts))


def _lines(text: str) -> str:
    """Each line with its white space collapsed, without leading and trailing empty lines."""
    if "\n" not in text:  # str.split() and the pattern \s agree on what white space is
        return " ".join(text.split())
    lines = [" ".join(line.split()) for line in text.split("\n")]
    kept = [i for i, line in enumerate(lines) if line]
    return "\n".join(lines[kept[0]:kept[-1] + 1]) if kept else ""  # without leading and trailing empty lines
