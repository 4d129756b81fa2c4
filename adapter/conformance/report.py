"""`ggop-adapter conformance`: convert MedCom files (or read FHIR JSON), validate every
resource with HAPI FHIR's validator against R4 core, the Danish profiles and the
adapter's own definitions, and report by profile and by message.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adapter.data import MAPPINGS_DIR
from adapter.errors import AdapterError

if TYPE_CHECKING:
    from adapter.runtime import Runtime

OWN_DEFINITIONS = [MAPPINGS_DIR / "codesystems", MAPPINGS_DIR / "profiles"]
_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource")
_IDS = re.compile(r"urn:uuid:[0-9a-f-]{36}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Finding:
    source: str
    profile: str
    resource: str
    severity: str
    location: str
    message: str
    message_id: str | None
    line: int | None = None


@dataclass
class Report:
    sources: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)  # source → issue lines
    resources: Counter = field(default_factory=Counter)  # profile → resources checked
    findings: list[Finding] = field(default_factory=list)
    validator: dict = field(default_factory=dict)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0 and not self.refused

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "sources": self.sources,
            "refused": self.refused,
            "resourcesByProfile": dict(self.resources),
            "counts": {s: self.count(s) for s in ("error", "warning", "information")},
            "validator": self.validator,
            "findings": [f.__dict__ for f in self.findings],
        }


def own_package(target: Path) -> Path:
    """An npm-style FHIR package folder with the adapter's own CodeSystems, ValueSets and
    StructureDefinitions, so the validator knows them."""
    pkg = target / "ggop-adapter.definitions#0.1.0"
    (pkg / "package").mkdir(parents=True, exist_ok=True)
    (pkg / "package" / "package.json").write_text(json.dumps({
        "name": "ggop-adapter.definitions", "version": "0.1.0", "fhirVersions": ["4.0.1"],
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"}}), encoding="utf-8")
    for folder in OWN_DEFINITIONS:
        for f in sorted(folder.glob("*.json")):
            data = json.loads(f.read_text("utf-8"))
            name = f"{data['resourceType']}-{data['id']}.json"
            shutil.copyfile(f, pkg / "package" / name)
    return pkg


def _profiles_of(resource: dict) -> list[str]:
    rtype = resource.get("resourceType", "?")
    return list(resource.get("meta", {}).get("profile", [])) or [
        f"http://hl7.org/fhir/StructureDefinition/{rtype}"]


def load_inputs(paths: Iterable[str], runtime: Runtime) -> Iterable[tuple[str, dict | None, list[str]]]:
    """(source name, FHIR JSON or None, issue lines when refused) per input file; MedCom XML
    is converted by ``runtime``."""
    for p in _expand(paths):
        name = str(p)
        if p.suffix.lower() == ".json":
            try:
                yield name, json.loads(p.read_text("utf-8")), []
            except (OSError, ValueError) as exc:
                yield name, None, [f"{name}:0 / not readable FHIR JSON ({type(exc).__name__})"]
            continue
        try:
            yield name, runtime.convert(p.read_bytes()).bundle, []
        except AdapterError as exc:
            yield name, None, [i.render_line(name) for i in exc.issues]
        except OSError as exc:
            yield name, None, [f"{name}:0 / cannot be read ({type(exc).__name__})"]


def _expand(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix.lower() in (".xml", ".json") and x.is_file()
                            and not x.name.endswith(".expect.json"))
        else:
            files.append(p)
    return files


def run(paths: Iterable[str], runtime: Runtime, validator=None, progress=None) -> Report:
    """Validate everything; ``validator`` is a started HapiValidator (one is made if None)."""
    from adapter.conformance.validator import HapiValidator, package_folders

    report = Report()
    tmp = None
    owned = validator is None
    if owned:
        tmp = tempfile.TemporaryDirectory(prefix="ggop-conformance-")
        validator = HapiValidator(packages=package_folders() + [own_package(Path(tmp.name))])
        validator.start()
    try:
        report.validator = {"startupSeconds": validator.startup_seconds,
                            "packages": [p.name for p in validator.packages]}
        for n, (name, resource, refused) in enumerate(load_inputs(paths, runtime), 1):
            report.sources.append(name)
            if resource is None:
                report.refused[name] = refused
                continue
            entries = [e.get("resource", {}) for e in resource.get("entry", [])] \
                if resource.get("resourceType") == "Bundle" else [resource]
            for r in entries:
                for prof in _profiles_of(r):
                    report.resources[prof] += 1
            for i in validator.validate(resource):
                loc = i.get("location") or ""
                m = _ENTRY.match(loc)
                target = entries[int(m.group(1))] if m and int(m.group(1)) < len(entries) else resource
                report.findings.append(Finding(
                    source=name, profile=_profiles_of(target)[0],
                    resource=f"{target.get('resourceType')}/{target.get('id')}",
                    severity=i.get("severity", "error"), location=loc, message=i.get("message", ""),
                    message_id=i.get("messageId"), line=i.get("line")))
            if progress and n % 50 == 0:
                progress(n)
    finally:
        if owned:
            validator.close()
        if tmp is not None:
            tmp.cleanup()
    return report


def _groups(report: Report):
    groups: dict[str, dict[tuple, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for f in report.findings:
        key = (f.severity, f.message_id or "", _normalise(f.message))
        groups[f.profile][key].append(f)
    return groups


def _normalise(message: str) -> str:
    """The message without ids and codes, so one kind of finding is one group."""
    message = _IDS.sub("…", message)
    return re.sub(r"'([^'#\s]+)#[^']*'", r"'\1#…'", message)


SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}


def render_text(report: Report, verbose: bool = False) -> str:
    lines = [(f"conformance: {len(report.sources)} inputs, {sum(report.resources.values())} resources; "
             f"validator ready in {report.validator.get('startupSeconds') or 0:.1f} s with "
             f"{len(report.validator.get('packages', []))} packages")]
    for name, issues in report.refused.items():
        lines.append(f"REFUSED {name}")
        lines += [f"  {x}" for x in issues]
    groups = _groups(report)
    for profile in sorted(set(report.resources) | set(groups)):
        g = groups.get(profile, {})
        counts = Counter(f.severity for fs in g.values() for f in fs)
        lines.append(f"\n{profile}  ({report.resources.get(profile, 0)} resources): "
                     f"{counts['error']} errors, {counts['warning']} warnings, {counts['information']} information")
        for (sev, mid, msg), fs in sorted(g.items(), key=lambda kv: (SEVERITY_ORDER.get(kv[0][0], 9), -len(kv[1]))):
            lines.append(f"  {sev:<11} x{len(fs):<5} {mid}: {msg}")
            for f in (fs if verbose else fs[:1]):
                lines.append(f"      at {f.location} ({f.source})")
    lines.append(f"\n{report.count('error')} errors, {report.count('warning')} warnings, "
                 f"{report.count('information')} information; {len(report.refused)} inputs refused")
    return "\n".join(lines)


_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:90%}")
_FINDINGS_HEADER = ("<tr><th>Profile</th><th>Severity</th><th>Count</th><th>Message id</th><th>Message</th>"
                    "<th>Where (first 5)</th></tr>")


def render_html(report: Report) -> str:
    groups = _groups(report)
    rows = []
    for profile in sorted(set(report.resources) | set(groups)):
        for (sev, mid, msg), fs in sorted(groups.get(profile, {}).items(),
                                          key=lambda kv: (SEVERITY_ORDER.get(kv[0][0], 9), -len(kv[1]))):
            examples = "<br>".join(html.escape(f"{f.location} ({f.source})") for f in fs[:5])
            rows.append(f"<tr class='{sev}'><td>{html.escape(profile)}</td><td>{sev}</td><td>{len(fs)}</td>"
                        f"<td>{html.escape(mid)}</td><td>{html.escape(msg)}</td><td>{examples}</td></tr>")
    refused = "".join(f"<li>{html.escape(n)}<pre>{html.escape(chr(10).join(v))}</pre></li>"
                      for n, v in report.refused.items())
    profiles = "".join(f"<tr><td>{html.escape(p)}</td><td>{n}</td></tr>" for p, n in sorted(report.resources.items()))
    resources = sum(report.resources.values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FHIR conformance report</title>
<style>{_CSS}
tr.error td{{background:#fdd}}tr.warning td{{background:#ffd}}.ok{{color:#070}}.bad{{color:#a00}}</style></head>
<body><h1>FHIR conformance report</h1>
<p class="{'ok' if report.ok else 'bad'}"><b>{report.count('error')} errors</b>, {report.count('warning')} warnings,
{report.count('information')} information over {len(report.sources)} inputs and {resources} resources;
{len(report.refused)} inputs refused. Generated {dt.date.today().isoformat()}.</p>
<h2>Resources by profile</h2><table><tr><th>Profile</th><th>Resources</th></tr>{profiles}</table>
<h2>Findings by profile</h2><table>{_FINDINGS_HEADER}
{''.join(rows)}</table>
{'<h2>Refused inputs</h2><ul>' + refused + '</ul>' if refused else ''}
</body></html>
"""
