"""The rules' outcome for one plan as plain data (the `<case>.trace.json` golden files and
`ggop-adapter explain`), and its rendering in Danish and English."""

from __future__ import annotations

from typing import TypedDict

from adapter.rules.model import Schedule, StratificationProposal


def _basis(items) -> list[dict]:
    return [{"document": b.document, "section": b.section} for b in items]


def trace(proposal: StratificationProposal | None, schedule: Schedule | None) -> dict:
    out: dict = {"planType": schedule.plan_type if schedule else (proposal.plan_type if proposal else None)}
    if proposal is not None:
        out["stratification"] = {
            "level": proposal.level,
            "status": "proposed" if proposal.level else None,
            "strength": proposal.strength,
            "decidedBy": list(proposal.decided_by),
            "summary": {"da": proposal.summary_da, "en": proposal.summary_en},
            "fired": [{
                "rule": f.rule_id,
                "effect": f.effect.kind + (f" {f.effect.level}" if f.effect.level else ""),
                "counted": f.counted,
                "neutralisedBy": f.neutralised_by,
                "reason": {"da": f.reason_da, "en": f.reason_en},
                "legalBasis": _basis(f.legal_basis),
                "evidence": [{"input": e.input, "matched": e.matched, "xpath": e.xpath, "line": e.line}
                             for e in f.evidence],
            } for f in proposal.fired],
            "notFired": list(proposal.not_fired),
            "changeWindowDays": proposal.change_window_days,
        }
    if schedule is not None:
        out["discharge"] = schedule.discharge.isoformat() if schedule.discharge else None
        out["deadlines"] = [{
            "task": d.task_code,
            "title": d.task_display,
            "titleEn": d.title,
            "rule": d.rule_id,
            "due": d.due.isoformat(timespec="seconds"),
            "owner": d.owner,
            "day0": d.day0.isoformat(),
            "day0From": d.day0_from,
            "businessStatus": d.business_status,
            "planDeadline": ({"text": d.plan_deadline.text, "kind": d.plan_deadline.kind}
                             if d.plan_deadline is not None else None),
            "reason": {"da": d.reason_da, "en": d.reason_en},
            "legalBasis": _basis(d.legal_basis),
        } for d in schedule.deadlines]
        out["pending"] = [{"rule": p.rule.id, "task": p.rule.task, "trigger": p.rule.trigger}
                          for p in schedule.pending]
    return out


class _Labels(TypedDict):
    plan: str
    level: str
    none: str
    rules: str
    deadlines: str
    due: str
    owner: str
    basis: str
    pending: str
    owners: dict[str, str]
    proposal: str


LABELS: dict[str, _Labels] = {
    "da": {"plan": "Plantype", "level": "Foreslået niveau", "none": "intet forslag (niveauet er fastlagt i planen)",
           "rules": "Regler der gav udslag", "deadlines": "Frister", "due": "senest", "owner": "ansvarlig",
           "basis": "retsgrundlag", "pending": "Frister der opstår senere",
           "owners": {"receiver": "kommunen", "sender": "sygehuset", "region": "regionen"},
           "proposal": "forslag, ikke en afgørelse: en terapeut i kommunen bekræfter niveauet"},
    "en": {"plan": "Plan type", "level": "Proposed level", "none": "no proposal (the plan sets the level)",
           "rules": "Rules that fired", "deadlines": "Deadlines", "due": "due", "owner": "owner",
           "basis": "legal basis", "pending": "Deadlines that arise later",
           "owners": {"receiver": "the municipality", "sender": "the hospital", "region": "the region"},
           "proposal": "a proposal, not a decision: a municipal therapist confirms the level"},
}


def explain(t: dict, lang: str) -> str:
    lab = LABELS[lang]
    lines = [f"{lab['plan']}: {t.get('planType')}"]
    strat = t.get("stratification")
    if strat is not None:
        level = strat["level"] or lab["none"]
        lines.append(f"{lab['level']}: {level}" + (f" ({lab['proposal']})" if strat["level"] else ""))
        lines.append(f"  {strat['summary'][lang]}")
        lines.append(f"{lab['rules']}:")
        for f in strat["fired"]:
            basis = "; ".join(f"{b['document']} {b['section']}" for b in f["legalBasis"])
            lines.append(f"  - {f['rule']} ({f['effect']}): {f['reason'][lang]}")
            lines.append(f"      {lab['basis']}: {basis}")
    if t.get("deadlines") is not None:
        lines.append(f"{lab['deadlines']}:")
        for d in t["deadlines"]:
            basis = "; ".join(f"{b['document']} {b['section']}" for b in d["legalBasis"])
            title = d["title"] if lang == "da" else (d.get("titleEn") or d["title"])
            lines.append(f"  - {title}: {lab['due']} {d['due']}, {lab['owner']} {lab['owners'][d['owner']]}"
                         f" [{d['rule']}]")
            lines.append(f"      {d['reason'][lang]}")
            lines.append(f"      {lab['basis']}: {basis}")
        if t.get("pending"):
            lines.append(f"{lab['pending']}: " + ", ".join(f"{p['rule']} ({p['trigger']})" for p in t["pending"]))
    return "\n".join(lines)
