"""Level proposals over generated plans: the generator's mix beside the national figures, and
the share of almen plans the stratification rules propose as avanceret.

Generates messages (``adapter.generate``, reproducible by seed) until it has ``--almen`` almen
plans, prints the plan types and the almen plans' primary-diagnosis categories beside seed S3's
2023 figures, then the proposed levels with the rules in ``adapter/mappings/stratification.yaml``
evaluated on ``--at``, and how often each rule fired. The expected avanceret share: 10-25 % of
the almen plans by six municipalities' count, 37,865 of about 200,000 (19 %) by KL's 2025 survey
(both S3). Children's plans get no proposal (their own pathway, STRAT-R7-CHILD): the share is
of the adults' almen plans, and of all almen plans beside it. ``--check`` exits 1 when the
avanceret share is outside ``--band``.

Run: ``python bench/levels.py`` (10,000 almen plans, seed 2026) or
``python bench/levels.py --almen 2000 --seed 7 --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.generate import GeneratedMessage, iter_messages
from adapter.generate.mix import MixRow, format_rows, plan_mix
from adapter.pipeline import validate_bytes
from adapter.rules.loader import load_rules
from adapter.rules.stratify import stratify

# S3, "Estimater": "mellem 10-25% af de almene genoptræningsplaner visiteres til avanceret"
MUNICIPAL_RANGE = (0.10, 0.25)
# S3, note 17: KL's 2025 survey, 37,865 avanceret plans; S3: about 200,000 almen plans a year
KL_SURVEY_SHARE = 37_865 / 199_115


def collect(almen: int, seed: int) -> tuple[list[GeneratedMessage], list[GeneratedMessage]]:
    """All G-GOPs generated until ``almen`` almen plans are among them, and those almen plans."""
    plans: list[GeneratedMessage] = []
    almen_plans: list[GeneratedMessage] = []
    for m in iter_messages(seed):
        if m.kind != "ggop":
            continue
        plans.append(m)
        if m.facts["plan_type"] == "almen":
            almen_plans.append(m)
            if len(almen_plans) == almen:
                break
    return plans, almen_plans


def run(almen: int, seed: int, at: date) -> dict:
    rules = load_rules()
    plans, almen_plans = collect(almen, seed)
    levels: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    decided: Counter[str] = Counter()
    by_category: dict[str, Counter[str]] = {}
    for m in almen_plans:
        proposal = stratify(validate_bytes(m.xml).message, rules, at)
        fired.update(f.rule_id for f in proposal.fired)
        if proposal.level is None:  # a child: its own pathway, no proposal (STRAT-R7-CHILD)
            if proposal.decided_by != ("STRAT-R7-CHILD",):
                raise SystemExit(f"{m.filename}: no level proposed for an adult's almen plan")
            levels["none"] += 1
            decided["children's pathway (no proposal)"] += 1
            continue
        levels[proposal.level] += 1
        decided["decisive rule" if proposal.strength == "strong"
                else f"{proposal.counted} counted criteria"] += 1
        by_category.setdefault(m.facts["diagnosis_category"], Counter())[proposal.level] += 1
    n = len(almen_plans)
    proposed = levels["basal"] + levels["avanceret"]
    return {
        "seed": seed,
        "evaluated_on": at.isoformat(),
        "plans": len(plans),
        "almen_plans": n,
        "mix": [{"key": r.key, "label": r.label, "count": r.count, "of": r.of,
                 "share": r.share, "national": r.national} for r in plan_mix(plans)],
        "levels": {k: levels[k] for k in ("basal", "avanceret", "none")},
        # of the plans with a proposal (adults); children follow their own pathway
        "avanceret_share": levels["avanceret"] / proposed if proposed else 0.0,
        "avanceret_share_of_all_almen": levels["avanceret"] / n if n else 0.0,
        "avanceret_by_category": {c: {"plans": sum(v.values()), "avanceret": v["avanceret"]}
                                  for c, v in sorted(by_category.items())},
        "decided_by": dict(sorted(decided.items())),
        "rules_fired": {rid: fired[rid] for rid in [r.id for r in rules.stratification.rules]},
    }


def report(result: dict) -> str:
    n = result["almen_plans"]
    pct = 100 * result["avanceret_share"]
    lo, hi = MUNICIPAL_RANGE
    lines = [
        (f"Generated {result['plans']} G-GOPs (seed {result['seed']}) until {n} almen plans; "
         f"rules evaluated on {result['evaluated_on']}."),
        "",
        "Mix of the generated plans",
    ]
    lines.append(format_rows(plan_mix_rows(result)))
    lines += ["", "Proposed level (almen plans)"]
    for level, count in result["levels"].items():
        lines.append(f"  {level:34} {count:>7} {100 * count / n:9.2f}%")
    lines.append(f"  expected avanceret: {100 * lo:.0f}-{100 * hi:.0f} % (six municipalities, S3); "
                 f"{100 * KL_SURVEY_SHARE:.0f} % (KL survey 2025, S3)")
    lines.append(f"  avanceret share of the plans with a proposal (adults): {pct:.1f} %; of all almen plans, "
                 f"children included: {100 * result['avanceret_share_of_all_almen']:.1f} %")
    lines += ["", "Avanceret by primary-diagnosis category"]
    for category, c in result["avanceret_by_category"].items():
        lines.append(f"  {category:34} {c['avanceret']:>7} of {c['plans']:>6} "
                     f"{100 * c['avanceret'] / c['plans']:7.1f}%")
    lines += ["", "How the level was decided"]
    for key, count in result["decided_by"].items():
        lines.append(f"  {key:34} {count:>7} {100 * count / n:9.2f}%")
    lines += ["", "Rules fired (share of almen plans)"]
    for rid, count in result["rules_fired"].items():
        lines.append(f"  {rid:45} {count:>7} {100 * count / n:7.1f}%")
    return "\n".join(lines)


def plan_mix_rows(result: dict) -> list[MixRow]:
    return [MixRow(r["key"], r["label"], r["count"], r["of"], r["national"]) for r in result["mix"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--almen", type=int, default=10_000, help="almen plans to evaluate")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--at", type=date.fromisoformat, default=date(2026, 3, 2),
                    help="the date the rules are evaluated on (rules in force)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 when the avanceret share is outside --band")
    ap.add_argument("--band", type=float, nargs=2, default=(0.10, 0.30), metavar=("LOW", "HIGH"))
    args = ap.parse_args()
    if args.almen < 1:
        ap.error("--almen must be at least 1")
    result = run(args.almen, args.seed, args.at)
    print(json.dumps(result, indent=2) if args.json else report(result))
    low, high = args.band
    if args.check and not low <= result["avanceret_share"] <= high:
        print(f"avanceret share {result['avanceret_share']:.3f} outside {low}-{high}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
