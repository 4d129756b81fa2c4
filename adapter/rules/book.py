"""The rules per municipality: the national rules, and for each municipality that has rule
override files, the national rules with its own overrides on top.

Every override file names whom it is for: ``municipality: "0840"`` applies it only to plans
received by that municipality; ``municipality: national`` to every plan. A file that names
neither is refused at start (``GGOP-E501``), so one municipality's local standard can never
change another municipality's deadlines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from adapter.config_files import read_yaml
from adapter.errors import ConfigError, issue
from adapter.medcom.identifiers import normalise_municipality_code
from adapter.rules.loader import DEFAULT_DIR, load_rules
from adapter.rules.model import RuleSet

NATIONAL = "national"


@dataclass(frozen=True)
class RuleBook:
    national: RuleSet
    by_municipality: Mapping[str, RuleSet] = field(default_factory=dict)

    def for_municipality(self, code: str | None) -> RuleSet:
        """The rules for plans received by municipality ``code`` (four digits)."""
        return self.by_municipality.get(code or "", self.national)


def _whom(path: Path) -> str:
    doc, at = read_yaml(path)
    value = doc.get("municipality") if isinstance(doc, dict) else None
    if value is not None and str(value).strip().lower() == NATIONAL:
        return NATIONAL
    code = normalise_municipality_code(str(value)) if value is not None else None
    if code is None:
        raise ConfigError(issue("GGOP-E501", None, f"{at.file}#municipality",
                                'name the municipality the override is for ("0840"), or "national" for every plan'))
    return code


def load_rule_book(default_dir: Path = DEFAULT_DIR, override_files: Sequence[Path] = ()) -> RuleBook:
    """The national rules (with the national overrides) and each municipality's rules (the
    national ones with its own overrides on top, in the order given)."""
    whom = [(Path(p), _whom(Path(p))) for p in override_files]
    national_files = [p for p, w in whom if w == NATIONAL]
    national = load_rules(default_dir, national_files)
    codes = sorted({w for _p, w in whom if w != NATIONAL})
    by_code = {code: load_rules(default_dir, national_files + [p for p, w in whom if w == code]) for code in codes}
    return RuleBook(national, MappingProxyType(by_code))
