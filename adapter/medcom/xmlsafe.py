"""The one hardened XML reader every input goes through.

No DTD or DOCTYPE, no entity declarations or expansion, no network, a size limit
and a depth limit. A UTF-8 byte order mark, processing instructions and comments
are fine. UTF-8 bytes wrongly declared as ISO-8859-1 (seen in MedCom's own
examples) are read as UTF-8 with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from adapter.errors import Issue, XmlSyntaxError, issue

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_BOM = b"\xef\xbb\xbf"
_DECL = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])([A-Za-z0-9._-]+)\2", re.S)
_LATIN1_NAMES = {b"iso-8859-1", b"iso8859-1", b"latin-1", b"latin1", b"iso_8859-1", b"l1"}


@dataclass
class XmlDocument:
    root: etree._Element
    warnings: list[Issue] = field(default_factory=list)
    encoding: str = "UTF-8"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


def _first_line_of(data: bytes, token: bytes) -> int:
    pos = data.find(token)
    return data.count(b"\n", 0, pos) + 1 if pos >= 0 else 1


def _looks_like_utf8(data: bytes) -> bool:
    if not any(b >= 0x80 for b in data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
             max_depth: int = DEFAULT_MAX_DEPTH) -> XmlDocument:
    """Parse bytes into an lxml element tree, or raise :class:`XmlSyntaxError`."""
    if data is None or len(data.strip()) == 0 or data.strip() == _BOM:
        raise XmlSyntaxError(issue("GGOP-E005", 1, "/"))
    if len(data) > max_bytes:
        raise XmlSyntaxError(issue("GGOP-E003", None, "/", f"{len(data)} bytes, limit {max_bytes}"))

    # Refuse DTDs and entity declarations before the parser ever sees them.
    upper = data.upper()
    if b"<!DOCTYPE" in upper:
        raise XmlSyntaxError(issue("GGOP-E002", _first_line_of(upper, b"<!DOCTYPE"), "/"))
    if b"<!ENTITY" in upper:
        raise XmlSyntaxError(issue("GGOP-E007", _first_line_of(upper, b"<!ENTITY"), "/"))

    warnings: list[Issue] = []
    body = data
    encoding = "UTF-8"
    head = body[3:] if body.startswith(_BOM) else body
    match = _DECL.match(head)
    if match:
        encoding = match.group(3).decode("ascii")
        if match.group(3).lower() in _LATIN1_NAMES and _looks_like_utf8(head):
            head = head[: match.start(3)] + b"UTF-8" + head[match.end(3):]
            body = head
            warnings.append(issue("GGOP-W008", 1, "/"))
            encoding = "UTF-8"

    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        last = exc.error_log.last_error if exc.error_log else None
        kind = last.type_name if last is not None else "ERR"
        line = exc.lineno or (last.line if last is not None else None)
        if "ENCODING" in kind or "INVALID_CHAR" in kind or "UNSUPPORTED" in kind:
            raise XmlSyntaxError(issue("GGOP-E006", line, "/", kind)) from None
        if "ENTITY" in kind:
            raise XmlSyntaxError(issue("GGOP-E007", line, "/", kind)) from None
        raise XmlSyntaxError(issue("GGOP-E001", line, "/", kind)) from None
    except (ValueError, LookupError):
        raise XmlSyntaxError(issue("GGOP-E006", 1, "/")) from None

    if root is None:
        raise XmlSyntaxError(issue("GGOP-E005", 1, "/"))
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise XmlSyntaxError(issue("GGOP-E002", 1, "/"))

    _check_depth(root, max_depth)
    return XmlDocument(root=root, warnings=warnings, encoding=encoding)


def _check_depth(root: etree._Element, max_depth: int) -> None:
    stack = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        if depth > max_depth:
            raise XmlSyntaxError(issue("GGOP-E004", el.sourceline, None, f"limit {max_depth}"))
        for child in el:
            if isinstance(child.tag, str):
                stack.append((child, depth + 1))
        if isinstance(el, etree._Entity):  # pragma: no cover - resolve_entities=False
            raise XmlSyntaxError(issue("GGOP-E007", el.sourceline, None))
