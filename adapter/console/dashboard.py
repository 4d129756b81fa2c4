"""The dashboards: level split and deadline compliance, per municipality and nationally,
computed from the stored ServiceRequests and Tasks, drawn as inline SVG (readable without
JavaScript, each chart with a title and the same numbers in a table).

* basal/avanceret: each almen plan's level, as the municipality confirmed it (on the
  ServiceRequest) or else as the rules propose it (on the visitation Task), per month of
  receipt;
* compliance: of the ``inform-citizen`` and ``offer-start`` Tasks whose outcome is known
  (done on time, done late, or overdue), the share done on time: the 4-day and 7-day rules;
* waiting time: from day 0 (the discharge) to the offered start (the ``offered-start``
  output of the ``offer-start`` Task), in days: median and 90th percentile;
* plans per type (almen, specialiseret, rehabilitering).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.engine import Connection

from adapter.codes import CodeTables
from adapter.store.schema import resources

DONE_ON_TIME, DONE_LATE, OVERDUE = "done-on-time", "done-late", "overdue"
BLUE, ORANGE, GREY, INK = "#1f4e79", "#a64b00", "#595959", "#1a1a1a"


@dataclass
class Compliance:
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    open: int = 0

    @property
    def decided(self) -> int:
        return self.on_time + self.late + self.overdue

    @property
    def share(self) -> float | None:
        return self.on_time / self.decided if self.decided else None


@dataclass
class Stats:
    plans: int = 0
    by_type: Counter = field(default_factory=Counter)
    levels_by_month: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    inform: Compliance = field(default_factory=Compliance)
    offer: Compliance = field(default_factory=Compliance)
    waits: list[int] = field(default_factory=list)

    @property
    def levels(self) -> Counter:
        total: Counter = Counter()
        for c in self.levels_by_month.values():
            total.update(c)
        return total

    @property
    def avanceret_share(self) -> float | None:
        lv = self.levels
        n = lv["basal"] + lv["avanceret"]
        return lv["avanceret"] / n if n else None

    @property
    def median_wait(self) -> float | None:
        return percentile(self.waits, 50)

    @property
    def p90_wait(self) -> float | None:
        return percentile(self.waits, 90)


def percentile(values: list[int], p: float) -> float | None:
    """Nearest-rank percentile (the median of an even count is the mean of the middle two)."""
    if not values:
        return None
    xs = sorted(values)
    if p == 50:
        mid = len(xs) // 2
        return float(xs[mid]) if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    rank = max(1, math.ceil(p / 100 * len(xs)))
    return float(xs[rank - 1])


def _code(concept: dict | None) -> str | None:
    for c in (concept or {}).get("coding", []) or []:
        if c.get("code"):
            return c["code"]
    return None


def _input(task: dict, code: str, key: str):
    for i in (task.get("input") or []) + (task.get("output") or []):
        if _code(i.get("type")) == code:
            return i.get(key)
    return None


def _level(concept: dict | None, levels: dict[str, str]) -> str | None:
    for c in (concept or {}).get("coding", []) or []:
        if c.get("code") in levels:
            return levels[c["code"]]
    return None


def _focus(task: dict) -> str | None:
    ref = str((task.get("focus") or {}).get("reference") or "")
    return ref.rsplit("/", 1)[-1].removeprefix("urn:uuid:") or None


def compute(conn: Connection, tables: CodeTables, municipality: str | None) -> dict[str | None, Stats]:
    """Stats per municipality (key: code) and nationally (key: None); with ``municipality``
    only that one (under None).

    A plan's level is the municipality's confirmed level (the level Task's ``confirmed-level``
    output, or a level category on the ServiceRequest), else the rules' proposal (the level
    Task's ``proposed-level`` input)."""
    levels: dict[str, str] = {}
    for name in ("basal", "avanceret"):
        target = tables.translate("stratum-to-kl-category", name)
        if target is not None:
            levels[target.code] = name
    plans: dict[str, tuple[str | None, str, str, str | None]] = {}  # id: municipality, month, type, level
    task_levels: dict[str, str] = {}
    out: dict[str | None, Stats] = defaultdict(Stats)
    stmt = select(resources.c.type, resources.c.id, resources.c.municipality, resources.c.content).where(
        resources.c.type.in_(("ServiceRequest", "Task")), resources.c.deleted.is_(False))
    if municipality is not None:
        stmt = stmt.where(resources.c.municipality == municipality)
    for rtype, rid, code, content in conn.execute(stmt):
        targets = [out[None], out[code]] if municipality is None else [out[None]]
        if rtype == "ServiceRequest":
            categories = content.get("category") or []
            plan_type = (categories[0].get("coding") or [{}])[0].get("display") if categories else None
            month = str(content.get("authoredOn") or "")[:7] or "?"
            level = next((lv for cat in categories[1:] if (lv := _level(cat, levels))), None)
            plans[rid] = (code, month, plan_type or "?", level)
            continue
        kind = _code(content.get("code"))
        if kind in ("visitate-level", "visitate-child"):
            level = _level(_input(content, "confirmed-level", "valueCodeableConcept"), levels) or \
                _level(_input(content, "proposed-level", "valueCodeableConcept"), levels)
            focus = _focus(content)
            if level and focus:
                task_levels[focus] = level
            continue
        if kind not in ("inform-citizen", "offer-start"):
            continue
        status = _code(content.get("businessStatus"))
        wait = None
        if kind == "offer-start":
            start, day0 = _input(content, "offered-start", "valueDate"), _input(content, "day-0", "valueDate")
            if start and day0:
                try:
                    wait = (dt.date.fromisoformat(start[:10]) - dt.date.fromisoformat(day0[:10])).days
                except ValueError:
                    wait = None
        for s in targets:
            c = s.inform if kind == "inform-citizen" else s.offer
            if status == DONE_ON_TIME:
                c.on_time += 1
            elif status == DONE_LATE:
                c.late += 1
            elif status == OVERDUE:
                c.overdue += 1
            else:
                c.open += 1
            if wait is not None:
                s.waits.append(wait)
    for rid, (code, month, plan_type, level) in plans.items():
        level = level or task_levels.get(rid)
        for s in ([out[None], out[code]] if municipality is None else [out[None]]):
            s.plans += 1
            s.by_type[plan_type] += 1
            if level:
                s.levels_by_month[month][level] += 1
    if None not in out:
        out[None] = Stats()
    return dict(out)


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    t = escape(title)
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" width="{width}" '
                  f'height="{height}" viewBox="0 0 {width} {height}" class="chart"><title>{t}</title>'
                  + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12, fill: str = INK) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">'
            f"{escape(text)}</text>")


def level_chart(stats: Stats) -> Markup:
    """100 % bars per month: basal (blue) and avanceret (orange)."""
    months = sorted(stats.levels_by_month)[-12:]
    title = "Share of basal and avanceret per month of receipt"
    if not months:
        return _svg(420, 40, title, [_text(8, 24, "No almen plans with a level yet.")])
    bar_w, gap, h, top = 34, 10, 160, 24
    width = max(160, 60 + len(months) * (bar_w + gap))  # room for the legend with one month
    body = [_text(8, 14, "basal", fill=BLUE), _text(60, 14, "avanceret", fill=ORANGE)]
    for i, m in enumerate(months):
        c = stats.levels_by_month[m]
        n = c["basal"] + c["avanceret"]
        x = 50 + i * (bar_w + gap)
        basal_h = h * c["basal"] / n if n else 0
        body.append(f'<rect x="{x}" y="{top}" width="{bar_w}" height="{h - basal_h:.1f}" fill="{ORANGE}">'
                    f'<title>{escape(m)}: avanceret {c["avanceret"]} of {n}</title></rect>')
        body.append(f'<rect x="{x}" y="{top + h - basal_h:.1f}" width="{bar_w}" height="{basal_h:.1f}" fill="{BLUE}">'
                    f'<title>{escape(m)}: basal {c["basal"]} of {n}</title></rect>')
        body.append(_text(x + bar_w / 2, top + h + 14, m[2:], "middle", 11))
        body.append(_text(x + bar_w / 2, top + h + 27, f"n={n}", "middle", 10, GREY))
    body.append(_text(44, top + 8, "100 %", "end", 10, GREY))
    body.append(_text(44, top + h, "0 %", "end", 10, GREY))
    return _svg(width, top + h + 34, title, body)


def share_bars(rows: list[tuple[str, float | None, str]], title: str) -> Markup:
    """Horizontal bars of shares (0–1), each with its label and a note."""
    bar_max, row_h = 260, 28
    body = []
    for i, (name, share, note) in enumerate(rows):
        y = 8 + i * row_h
        body.append(_text(0, y + 14, name))
        body.append(f'<rect x="170" y="{y}" width="{bar_max}" height="18" fill="#e6e6e6"/>')
        if share is not None:
            body.append(f'<rect x="170" y="{y}" width="{bar_max * share:.1f}" height="18" fill="{BLUE}"/>')
        body.append(_text(170 + bar_max + 8, y + 14, f"{pct(share)} {note}"))
    return _svg(560, 8 + len(rows) * row_h, title, body)


def count_bars(counts: list[tuple[str, int]], title: str) -> Markup:
    if not counts:
        return _svg(420, 40, title, [_text(8, 24, "Nothing yet.")])
    top = max(n for _, n in counts) or 1
    body = []
    for i, (name, n) in enumerate(counts):
        y = 8 + i * 28
        body.append(_text(0, y + 14, name))
        body.append(f'<rect x="170" y="{y}" width="{260 * n / top:.1f}" height="18" fill="{BLUE}"/>')
        body.append(_text(170 + 260 * n / top + 8, y + 14, str(n)))
    return _svg(560, 8 + len(counts) * 28, title, body)


def wait_buckets(waits: list[int]) -> list[tuple[str, int]]:
    edges = [("0–7 days", 0, 7), ("8–14 days", 8, 14), ("15–28 days", 15, 28), ("over 28 days", 29, 10**6)]
    return [(name, sum(1 for w in waits if lo <= w <= hi)) for name, lo, hi in edges]
