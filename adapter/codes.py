"""Code tables from ``adapter/mappings/``: ConceptMaps, CodeSystems and the municipality list.

Loaded once into an immutable :class:`CodeTables` that the pure core receives as
an argument. A broken or missing file is a :class:`ConfigError` naming the file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from adapter.data import MAPPINGS_DIR
from adapter.errors import ConfigError, issue


@dataclass(frozen=True)
class Target:
    system: str
    code: str
    display: str | None


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    region_code: str
    region_name: str


class CodeTables:
    def __init__(self, concept_maps: dict[str, dict[str, Target]], code_systems: dict[str, dict],
                 municipalities: dict[str, Municipality]):
        self._maps = concept_maps
        self._systems = code_systems
        self.municipalities = municipalities

    def translate(self, map_id: str, code: str | None, *, casefold: bool = False) -> Target | None:
        if code is None:
            return None
        table = self._maps[map_id]
        return table.get(code.lower() if casefold else code)

    def codes(self, map_id: str) -> list[str]:
        return list(self._maps[map_id])

    def text(self, code: str, system: str = "adapter-texts") -> str:
        return self._systems[system]["concepts"][code]

    def system_url(self, system: str) -> str:
        return self._systems[system]["url"]

    def all_strings(self) -> set[str]:
        """Every string the tables can contribute to a resource (for invariants)."""
        out: set[str] = set()
        for table in self._maps.values():
            for t in table.values():
                out.update(x for x in (t.system, t.code, t.display) if x)
        for cs in self._systems.values():
            out.add(cs["url"])
            for code, display in cs["concepts"].items():
                out.update((code, display))
        for m in self.municipalities.values():
            out.update((m.code, m.name, m.region_code, m.region_name))
        return out


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path), type(exc).__name__)) from None


def _concept_map(path: Path) -> dict[str, Target]:
    data = _load_json(path)
    table: dict[str, Target] = {}
    try:
        for group in data["group"]:
            for el in group["element"]:
                tgt = el["target"][0]
                table[el["code"]] = Target(group["target"], tgt["code"], tgt.get("display"))
    except (KeyError, IndexError, TypeError) as exc:
        raise ConfigError(issue("GGOP-E501", None, f"{path}", f"missing key {exc}")) from None
    return table


def _code_system(path: Path) -> dict:
    data = _load_json(path)
    try:
        return {"url": data["url"], "concepts": {c["code"]: c["display"] for c in data["concept"]}}
    except (KeyError, TypeError) as exc:
        raise ConfigError(issue("GGOP-E501", None, f"{path}", f"missing key {exc}")) from None


def _municipalities(path: Path) -> dict[str, Municipality]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {r["kommunekode"]: Municipality(r["kommunekode"], r["navn"], r["regionskode"], r["regionsnavn"])
                for r in rows}
    except (OSError, KeyError, csv.Error) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path), type(exc).__name__)) from None


@lru_cache(maxsize=8)
def load_code_tables(mappings_dir: Path = MAPPINGS_DIR) -> CodeTables:
    maps = {p.stem: _concept_map(p) for p in sorted((mappings_dir / "conceptmaps").glob("*.json"))}
    systems = {p.stem: _code_system(p) for p in sorted((mappings_dir / "codesystems").glob("*.json"))}
    return CodeTables(maps, systems, _municipalities(mappings_dir / "municipalities.csv"))
