"""The large hostile cases, made at run time rather than stored (tests/test_hostile.py,
bench/hostile.py): each (bytes, the HTTP status POST /medcom must answer, the codes)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def _plan() -> str:
    return (DATA / "ggop" / "minimal-almen.xml").read_text("utf-8")


def _full() -> str:
    return (DATA / "ggop" / "full-specialiseret.xml").read_text("utf-8")


def large_cases() -> dict[str, tuple[bytes, int, list[str]]]:
    plan, full = _plan(), _full()
    street = plan.index("</mm100:StreetName>")
    attrs = plan.index("<mm100:StreetName") + len("<mm100:StreetName")
    text = full.index("<Bold>8a.")
    return {
        "140000-empty-elements": ((plan[:street] + "<x/>" * 140_000 + plan[street:]).encode(), 400, ["GGOP-E011"]),
        "800000-attributes-on-one-element": (
            (plan[:attrs] + "".join(f' a{k}=""' for k in range(800_000)) + plan[attrs:]).encode(), 400, ["GGOP-E012"]),
        "40000-leading-line-breaks-in-a-text": (
            (full[:text] + "<Break/>" * 40_000 + full[text:]).encode(), 200, []),
        "60-unknown-attributes-on-an-element": (
            plan.replace("<mm100:StreetName>", "<mm100:StreetName " + " ".join(f'b{k}=""' for k in range(60)) + ">")
            .encode(), 200, ["GGOP-W204"]),
    }
