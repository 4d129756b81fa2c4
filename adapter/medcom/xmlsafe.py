"""The one hardened XML reader every input goes through.

No DTD or DOCTYPE, no entity declarations or expansion, no file system or network, limits on
size, depth, element count and attributes per element. A byte order mark, processing
instructions, comments and CDATA are fine. UTF-8 bytes wrongly declared as ISO-8859-1 (seen
in MedCom's own examples) are read as UTF-8 with a warning.

The bytes are decoded here, in whichever encoding the BOM, the XML autodetection or the
declaration names (only the encodings in :data:`ENCODINGS`), and the checks run on the
decoded text; libxml2 is then given UTF-8, so what was checked is exactly what is parsed, in
any encoding (a UTF-16 ``DOCTYPE`` is found like a UTF-8 one). A ``DOCTYPE`` can only stand in
the prolog, so only the prolog is searched (one inside CDATA or a comment is text). Every
check is one linear pass over the text; the parser never loads a DTD, resolves an entity or
opens a file or URL (a resolver refuses everything, whatever the other options say).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from adapter.errors import Issue, XmlSyntaxError, issue

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ELEMENTS = 50_000  # a rich G-GOP has about a thousand
DEFAULT_MAX_ATTRIBUTES = 64  # per element; MedCom messages use namespace declarations only

# Encodings a MedCom message may come in (Python codec names); anything else is GGOP-E006.
ENCODINGS = frozenset(codecs.lookup(name).name for name in (
    "utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
    "iso-8859-1", "iso-8859-15", "windows-1252", "us-ascii"))
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# XML 1.0 appendix F: the first four bytes of "<?xm" without a BOM
_SIGNATURES = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
               (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"))
_BOM = codecs.BOM_UTF8
_DECL = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])([A-Za-z0-9._-]+)\2", re.S)
_LATIN1 = "latin-1"
# possessive: no backtracking state kept for a long tag (memory stays flat)
_START_TAG = re.compile(r"<[A-Za-z_:\u00c0-\uffff](?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+")
_ATTRIBUTE = re.compile(r"\"[^\"]*\"|'[^']*'|=")


@dataclass
class XmlDocument:
    root: etree._Element
    warnings: list[Issue] = field(default_factory=list)
    encoding: str = "UTF-8"


class _NoResolution(etree.Resolver):
    """Refuses every external entity, DTD or XInclude: nothing is read from disk or network."""

    def resolve(self, url, public_id, context):
        raise XmlSyntaxError(issue("GGOP-E007", None, "/", "external resource"))


def _parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
        encoding="utf-8",
    )
    parser.resolvers.add(_NoResolution())
    return parser


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _looks_like_utf8(data: bytes) -> bool:
    if not any(b >= 0x80 for b in data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _codec(name: str) -> str | None:
    try:
        found = codecs.lookup(name).name
    except LookupError:
        return None
    return found if found in ENCODINGS else None


def _decode(data: bytes) -> tuple[str, str, list[Issue]]:
    """(text, the declared or detected encoding's name, warnings); raises GGOP-E006."""
    detected, body = None, data
    for bom, name in _BOMS:
        if data.startswith(bom):
            detected, body = name, data[len(bom):]
            break
    if detected is None:
        detected = next((name for sig, name in _SIGNATURES if data.startswith(sig)), None)
    head = body[:400].decode(detected or _LATIN1, errors="replace")
    match = _DECL.match(head)
    declared = match.group(3) if match else None
    warnings: list[Issue] = []
    if detected is not None:
        codec = detected  # a BOM or a two/four-byte signature decides; the declaration names it again
    elif declared is None:
        codec = "utf-8"
    else:
        codec = _codec(declared) or ""
        if not codec:
            raise XmlSyntaxError(issue("GGOP-E006", 1, "/", "unsupported encoding"))
        if codec == "iso8859-1" and _looks_like_utf8(body):
            codec = "utf-8"
            warnings.append(issue("GGOP-W008", 1, "/"))
    try:
        text = body.decode(codec)
    except (UnicodeDecodeError, LookupError) as exc:
        line = body.count(b"\n", 0, exc.start) + 1 if isinstance(exc, UnicodeDecodeError) else 1
        raise XmlSyntaxError(issue("GGOP-E006", line, "/", codec)) from None
    return text, declared or codec.upper(), warnings


def _prolog_check(text: str) -> int:
    """Refuse a DOCTYPE (or any other markup declaration) before the root element; returns
    where the root element starts. Only the prolog can hold one, and only the prolog is read."""
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace() or ch == "\ufeff":
            pos += 1
            continue
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            if end < 0:
                break
            pos = end + 2
            continue
        if text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end < 0:
                break
            pos = end + 3
            continue
        if text.startswith("<!", pos):
            code = "GGOP-E007" if text[pos:pos + 9].upper() == "<!ENTITY" else "GGOP-E002"
            raise XmlSyntaxError(issue(code, _line_of(text, pos), "/"))
        break
    return pos


def _count_check(text: str, start: int, max_elements: int, max_attributes: int) -> None:
    """Element count and attributes per element, in one pass over the start tags."""
    if text.count("<", start) <= max_elements and text.count("=", start) <= max_attributes:
        return  # fewer "<" than the element limit, fewer "=" than the attribute limit: nothing to find
    for elements, tag in enumerate(_START_TAG.finditer(text, start), 1):
        if elements > max_elements:
            raise XmlSyntaxError(issue("GGOP-E011", _line_of(text, tag.start()), "/", f"limit {max_elements}"))
        body = tag.group()
        if body.count("=") <= max_attributes:
            continue
        attributes = 0  # "=" outside quoted values, up to one past the limit
        for token in _ATTRIBUTE.finditer(body):
            attributes += token.group() == "="
            if attributes > max_attributes:
                raise XmlSyntaxError(issue("GGOP-E012", _line_of(text, tag.start()), "/", f"limit {max_attributes}"))


def read_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
             max_elements: int = DEFAULT_MAX_ELEMENTS, max_attributes: int = DEFAULT_MAX_ATTRIBUTES) -> XmlDocument:
    """Parse bytes into an lxml element tree, or raise :class:`XmlSyntaxError`."""
    stripped = data.strip() if data is not None else b""
    if not stripped or stripped == _BOM:
        raise XmlSyntaxError(issue("GGOP-E005", 1, "/"))
    if len(data) > max_bytes:
        raise XmlSyntaxError(issue("GGOP-E003", None, "/", f"{len(data)} bytes, limit {max_bytes}"))

    text, encoding, warnings = _decode(data)
    if not text.strip():
        raise XmlSyntaxError(issue("GGOP-E005", 1, "/"))
    root_at = _prolog_check(text)
    _count_check(text, root_at, max_elements, max_attributes)
    if encoding == "UTF-8" and not warnings and not data.startswith(codecs.BOM_UTF8):
        source = data  # UTF-8, and said to be (or not said otherwise): libxml2 reads the bytes as they came
    else:
        match = _DECL.match(text)
        if match:  # libxml2 gets UTF-8, so the declaration must say so
            text = text[: match.start(3)] + "UTF-8" + text[match.end(3):]
        source = text.encode("utf-8", errors="surrogatepass")

    try:
        root = etree.fromstring(source, _parser())
    except XmlSyntaxError:
        raise
    except etree.XMLSyntaxError as exc:
        last = exc.error_log.last_error if exc.error_log else None
        kind = last.type_name if last is not None else "ERR"
        line = exc.lineno or (last.line if last is not None else None)
        if "ENCODING" in kind or "INVALID_CHAR" in kind or "UNSUPPORTED" in kind:
            raise XmlSyntaxError(issue("GGOP-E006", line, "/", kind)) from None
        declared = text.upper().find("<!ENTITY")
        if "ENTITY" in kind or declared >= 0:  # an entity declaration outside a DOCTYPE
            raise XmlSyntaxError(issue("GGOP-E007", _line_of(text, declared) if declared >= 0 else line, "/",
                                       kind)) from None
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


# A larger depth limit is checked by the Python walk alone (libxml2 refuses a document deeper
# than 256 levels by itself without huge_tree).
_XPATH_DEPTH_LIMIT = 256


def _check_depth(root: etree._Element, max_depth: int) -> None:
    if 0 < max_depth <= _XPATH_DEPTH_LIMIT and not _below(max_depth)(root):
        return  # no element max_depth levels below the root: within the limit (libxml2 looked)
    _walk_depth(root, max_depth)


@lru_cache(maxsize=8)
def _below(levels: int) -> etree.XPath:
    """Is there an element ``levels`` levels below the context element?"""
    return etree.XPath("boolean(" + "/".join(["*"] * levels) + ")")


def _walk_depth(root: etree._Element, max_depth: int) -> None:
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
