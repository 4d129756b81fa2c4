"""The rules' outcome for one plan as plain data (the `<case>.trace.json` golden files and
`ggop-adapter explain`), and its rendering in Danish and English."""

from __future__ import annotations

from typing import TypedDict

from adapter.rules.model import Schedule, StratificationProposal


def _basis(items) -> list[dict]:
    return [{"document": b.document, "section": b.section, **({"kind": b.kind} if b.kind else {})} for b in items]


KIND_LABELS = {
    "da": {"law": "lov", "executive-order": "bekendtgørelse", "guidance": "vejledning", "bill": "lovforslag",
           "regional-agreement": "regional aftale", "municipal-standard": "kommunal standard", "report": "rapport"},
    "en": {"law": "law", "executive-order": "executive order", "guidance": "guidance", "bill": "bill",
           "regional-agreement": "regional agreement", "municipal-standard": "municipal standard",
           "report": "report"},
}


def _cite(b: dict, lang: str) -> str:
    kind = f" ({KIND_LABELS[lang][b['kind']]})" if b.get("kind") else ""
    return f"{b['document']} {b['section']}{kind}"


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
            **({"notBefore": d.not_before.isoformat()} if d.not_before else {}),
            **({"notes": [{"flag": n.flag, "da": n.text_da, "en": n.text_en} for n in d.notes]} if d.notes else {}),
        } for d in schedule.deadlines]
        if schedule.earliest_start is not None:
            out["earliestStart"] = schedule.earliest_start.isoformat()
        mergers = [m for m in schedule.region_mergers if m.valid_from <= schedule.day0]
        if mergers:  # regions replaced on day 0 (the 2027 reform): routing and the region Organization follow
            out["regionMergers"] = [{"regions": list(m.regions), "key": m.key, "code": m.code, "name": m.name}
                                    for m in mergers]
        out["pending"] = [{"rule": p.rule.id, "task": p.rule.task, "trigger": p.rule.trigger,
                           **({"suspended": {"flag": p.suspended.flag, "da": p.suspended.text_da,
                                             "en": p.suspended.text_en}} if p.suspended else {})}
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
    earliest: str
    note: str


LABELS: dict[str, _Labels] = {
    "da": {"plan": "Plantype", "level": "Foreslået niveau", "none": "intet forslag",
           "rules": "Regler der gav udslag", "deadlines": "Frister", "due": "senest", "owner": "ansvarlig",
           "basis": "retsgrundlag", "pending": "Frister der opstår senere",
           "owners": {"receiver": "kommunen", "sender": "sygehuset", "region": "regionen"},
           "proposal": "forslag, ikke en afgørelse: en terapeut i kommunen bekræfter niveauet",
           "earliest": "Tidligste opstart efter planen", "note": "note"},
    "en": {"plan": "Plan type", "level": "Proposed level", "none": "no proposal",
           "rules": "Rules that fired", "deadlines": "Deadlines", "due": "due", "owner": "owner",
           "basis": "legal basis", "pending": "Deadlines that arise later",
           "owners": {"receiver": "the municipality", "sender": "the hospital", "region": "the region"},
           "proposal": "a proposal, not a decision: a municipal therapist confirms the level",
           "earliest": "Earliest start the plan allows", "note": "note"},
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
            basis = "; ".join(_cite(b, lang) for b in f["legalBasis"])
            lines.append(f"  - {f['rule']} ({f['effect']}): {f['reason'][lang]}")
            lines.append(f"      {lab['basis']}: {basis}")
    if t.get("earliestStart"):
        lines.append(f"{lab['earliest']}: {t['earliestStart']}")
    if t.get("deadlines") is not None:
        lines.append(f"{lab['deadlines']}:")
        for d in t["deadlines"]:
            basis = "; ".join(_cite(b, lang) for b in d["legalBasis"])
            title = d["title"] if lang == "da" else (d.get("titleEn") or d["title"])
            lines.append(f"  - {title}: {lab['due']} {d['due']}, {lab['owner']} {lab['owners'][d['owner']]}"
                         f" [{d['rule']}]")
            lines.append(f"      {d['reason'][lang]}")
            lines.append(f"      {lab['basis']}: {basis}")
            for n in d.get("notes") or []:
                lines.append(f"      {lab['note']}" + (f" [{n['flag']}]" if n.get("flag") else "") + f": {n[lang]}")
        if t.get("pending"):
            lines.append(f"{lab['pending']}: " + ", ".join(f"{p['rule']} ({p['trigger']})" for p in t["pending"]))
            for p in t["pending"]:
                if p.get("suspended"):
                    lines.append(f"  - {p['rule']}: {p['suspended'][lang]}")
    return "\n".join(lines)
