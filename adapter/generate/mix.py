"""The mix of a batch of generated plans beside the national figures it follows.

    rows = plan_mix(generate_messages(5000, seed=7))
    print(format_rows(rows))

The national figures are seed S3's (2023, ``catalog.PLAN_TYPE_VOLUMES_2023`` and
``catalog.ALMEN_DIAGNOSIS_VOLUMES_2023``); a row without one (children) says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import catalog
from .common import GeneratedMessage

__all__ = ["MixRow", "format_rows", "plan_mix"]

CATEGORY_LABELS = {
    "abi": "acquired brain injury",
    "ms": "multiple sclerosis",
    "parkinson": "Parkinson's disease",
    "other": "other diagnoses",
}


@dataclass(frozen=True)
class MixRow:
    key: str  # "plan_type:almen", "almen:abi", "almen:child", ...
    label: str
    count: int
    of: int
    national: float | None  # the share in S3's figures; None when no source gives one

    @property
    def share(self) -> float:
        return self.count / self.of if self.of else 0.0


def plan_mix(messages: Iterable[GeneratedMessage]) -> list[MixRow]:
    """Plan types among the G-GOPs, and among the almen plans the primary-diagnosis
    categories S3 counts and the children."""
    plans = [m.facts for m in messages if m.kind == "ggop"]
    almen = [f for f in plans if f["plan_type"] == "almen"]
    national = catalog.national_shares()
    rows = [MixRow(f"plan_type:{t}", f"{t} plans", sum(f["plan_type"] == t for f in plans),
                   len(plans), national[f"plan_type:{t}"])
            for t in catalog.PLAN_TYPE_VOLUMES_2023]
    rows += [MixRow(f"almen:{c}", f"almen: {label}",
                    sum(f["diagnosis_category"] == c for f in almen), len(almen),
                    national[f"almen:{c}"])
             for c, label in CATEGORY_LABELS.items()]
    rows.append(MixRow("almen:child", "almen: children under 18",
                       sum(bool(f["child"]) for f in almen), len(almen), None))
    return rows


def format_rows(rows: Iterable[MixRow]) -> str:
    """One line per row: label, count, generated share and the national share."""
    lines = [f"  {'':34} {'count':>7} {'generated':>10} {'S3 2023':>9}"]
    for r in rows:
        national = f"{100 * r.national:8.2f}%" if r.national is not None else f"{'-':>9}"
        lines.append(f"  {r.label:34} {r.count:>7} {100 * r.share:9.2f}% {national}")
    return "\n".join(lines)
