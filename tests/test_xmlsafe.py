"""The hardened XML reader: what it refuses and what real-world mess it accepts."""

from __future__ import annotations

import pytest

from adapter.errors import XmlSyntaxError
from adapter.medcom.xmlsafe import read_xml
from conftest import DATA

MINIMAL = (DATA / "ggop" / "minimal-almen.xml").read_bytes()


def codes(exc_info):
    return [i.code for i in exc_info.value.issues]


def test_bom_processing_instruction_and_comments_are_accepted():
    body = MINIMAL.split(b"\n", 1)[1]
    raw = (b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n    <?xml-stylesheet type=\"text/xsl\" href=\"x.xsl\"?>\n"
           b"<!-- a comment -->\n" + body.replace(b"<Patient>", b"<!-- between --><Patient>"))
    doc = read_xml(raw)
    assert doc.root.tag.endswith("Emessage")
    assert doc.warnings == []


def test_utf8_mislabelled_as_latin1_is_read_as_utf8_with_a_warning():
    raw = MINIMAL.replace(b'encoding="UTF-8"', b'encoding="iso-8859-1"')
    doc = read_xml(raw)
    assert [w.code for w in doc.warnings] == ["GGOP-W008"]
    street = next(e for e in doc.root.iter() if isinstance(e.tag, str) and e.tag.endswith("StreetName"))
    assert street.text == "Prøvevej 1"


def test_real_latin1_is_decoded_as_declared():
    raw = MINIMAL.decode("utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    doc = read_xml(raw)
    assert doc.warnings == []
    street = next(e for e in doc.root.iter() if isinstance(e.tag, str) and e.tag.endswith("StreetName"))
    assert street.text == "Prøvevej 1"


def test_windows_1252_is_decoded_as_declared():
    raw = MINIMAL.decode("utf-8").replace('encoding="UTF-8"', 'encoding="windows-1252"').encode("cp1252")
    assert read_xml(raw).warnings == []


@pytest.mark.parametrize("raw,code", [
    (b"<?xml version='1.0'?><!DOCTYPE a SYSTEM 'http://example.invalid/a.dtd'><a/>", "GGOP-E002"),
    (b"<?xml version='1.0'?><!doctype a><a/>", "GGOP-E002"),
    (b"<a><!ENTITY x 'y'></a>", "GGOP-E007"),
    (b"<a>&x;</a>", "GGOP-E007"),
    (b"<a><b></a>", "GGOP-E001"),
    (b"", "GGOP-E005"),
    (b"\xef\xbb\xbf", "GGOP-E005"),
    (b"<?xml version='1.0' encoding='no-such-encoding'?><a/>", "GGOP-E006"),
])
def test_refusals(raw, code):
    with pytest.raises(XmlSyntaxError) as info:
        read_xml(raw)
    assert codes(info) == [code]


def test_depth_limit_is_configurable():
    raw = b"<a>" + b"<b>" * 20 + b"</b>" * 20 + b"</a>"
    read_xml(raw, max_depth=21)
    with pytest.raises(XmlSyntaxError) as info:
        read_xml(raw, max_depth=20)
    assert codes(info) == ["GGOP-E004"]


def test_parser_never_touches_the_network_or_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read")
    raw = f"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY s SYSTEM '{secret.as_uri()}'>]><a>&s;</a>".encode()
    with pytest.raises(XmlSyntaxError) as info:
        read_xml(raw)
    assert "do-not-read" not in str(info.value)


def test_the_tag_caches_stay_bounded_whatever_tags_and_namespaces_senders_choose():
    """Tags and namespaces come from the message: the caches that split them cannot grow with
    the number of distinct ones a sender (or many senders) write."""
    from adapter.medcom import nodes

    for i in range(nodes._FAMILY_LIMIT + 10):  # tags: 100 times as many again
        ns = f"urn:x:{i}"
        body = "".join(f"<e{i}-{j}>v</e{i}-{j}>" for j in range(100))
        root = nodes.Node.root(read_xml(f'<r xmlns="{ns}">{body}</r>'.encode()).root, frozenset({ns}))
        assert root.text(f"e{i}-7").value == "v"
        assert len(nodes._TAGS) <= nodes._CACHE_LIMIT
        assert len(nodes._FAMILY_NAMES) <= nodes._FAMILY_LIMIT
        assert all(len(names) <= nodes._CACHE_LIMIT for names in nodes._FAMILY_NAMES.values())


def test_white_space_is_the_same_for_str_split_and_the_pattern_it_replaced():
    """Text is collapsed with ``str.split`` where the pattern ``\\s+`` was used: the two agree on
    every code point."""
    import re
    import sys

    pattern = re.compile(r"\s")
    assert [c for c in map(chr, range(sys.maxunicode + 1)) if bool(pattern.fullmatch(c)) != c.isspace()] == []
