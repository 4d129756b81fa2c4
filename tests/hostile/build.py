"""Writes the small cases of this corpus from the project's goldens (run from the repository
root: ``python tests/hostile/build.py``). Each case is named by the defect it probes and has a
``<case>.expect.json``: the HTTP status ``POST /medcom`` must answer and the issue codes the
answer must carry. The large cases (many elements, many attributes, many line breaks) are made
by ``tests/test_hostile.py`` at run time instead of being stored."""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
PLAN = (DATA / "ggop" / "minimal-almen.xml").read_text("utf-8")
FULL = (DATA / "ggop" / "full-specialiseret.xml").read_text("utf-8")
LETTER = (DATA / "xdis91" / "letter-to-municipality.xml").read_text("utf-8")
BODY = PLAN[PLAN.index("?>") + 2:]


def body_with(decl_encoding: str, doctype: str, body: str = BODY) -> str:
    return f'<?xml version="1.0" encoding="{decl_encoding}"?>\n{doctype}{body}'


XXE = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
CASES: dict[str, tuple[bytes, int, list[str]]] = {
    "utf16-doctype-with-external-entity": (
        body_with("UTF-16", XXE, BODY.replace("Prøvevej 1", "&e;")).encode("utf-16"), 400, ["GGOP-E002"]),
    "utf16be-without-bom-doctype-with-external-entity": (
        body_with("UTF-16BE", XXE, BODY.replace("Prøvevej 1", "&e;")).encode("utf-16-be"), 400, ["GGOP-E002"]),
    "utf32-doctype-with-external-entity": (
        body_with("UTF-32", XXE, BODY.replace("Prøvevej 1", "&e;")).encode("utf-32"), 400, ["GGOP-E002"]),
    "utf16-external-dtd-on-dev-zero": (
        body_with("UTF-16", '<!DOCTYPE x SYSTEM "file:///dev/zero">').encode("utf-16"), 400, ["GGOP-E002"]),
    "utf16-parameter-entity-over-network": (
        body_with("UTF-16", '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>').encode("utf-16"),
        400, ["GGOP-E002"]),
    "doctype-after-a-comment": (
        body_with("UTF-8", "<!-- a comment first -->\n" + XXE).encode("utf-8"), 400, ["GGOP-E002"]),
    "doctype-inside-cdata-is-text": (
        PLAN.replace("Prøvevej 1", "<![CDATA[<!DOCTYPE x SYSTEM 'file:///etc/passwd'>]]>Prøvevej 1").encode("utf-8"),
        200, []),
    "entity-declaration-inside-a-comment-is-text": (
        PLAN.replace("<Patient>", "<!-- <!ENTITY e SYSTEM 'file:///etc/passwd'> --><Patient>").encode("utf-8"),
        200, []),
    "unsupported-encoding-declared": (
        PLAN.replace('encoding="UTF-8"', 'encoding="EBCDIC-US"').encode("utf-8"), 400, ["GGOP-E006"]),
    "envelope-sent-in-year-0001": (
        re.sub(r"(<Envelope[^>]*>.*?<Date>)[0-9-]+", r"\g<1>0001-01-01", PLAN, count=1, flags=re.S).encode("utf-8"),
        422, ["GGOP-E312"]),
    "envelope-sent-in-year-9999": (
        re.sub(r"(<Envelope[^>]*>.*?<Date>)[0-9-]+", r"\g<1>9999-12-31", PLAN, count=1, flags=re.S).encode("utf-8"),
        422, ["GGOP-E312"]),
    "discharge-in-year-9999": (
        re.sub(r"(<ExpectedEnd>\s*<[^>]*Date>)[0-9-]+", r"\g<1>9999-12-31", PLAN).encode("utf-8"), 422, ["GGOP-E312"]),
    "journal-signer-date-not-a-date": (
        FULL.replace("<Date>2026-04-06</Date>", "<Date>i går</Date>").encode("utf-8"), 200, ["GGOP-W338"]),
    "letter-with-empty-text": (
        re.sub(r"<Text01>.*?</Text01>", "<Text01/>", LETTER, flags=re.S).encode("utf-8"), 200, []),
    "letter-without-clinical-information": (
        re.sub(r"<ClinicalInformation>.*?</ClinicalInformation>", "", LETTER, flags=re.S).encode("utf-8"), 200, []),
}


def main() -> None:
    for name, (raw, status, codes) in CASES.items():
        (HERE / f"{name}.xml").write_bytes(raw)
        (HERE / f"{name}.expect.json").write_text(json.dumps({"status": status, "codes": codes}, indent=1) + "\n",
                                                   "utf-8")
    print(f"wrote {len(CASES)} cases to {HERE}")


if __name__ == "__main__":
    main()
