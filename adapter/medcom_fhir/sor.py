"""The SOR directory: which SOR code (and, for a municipal unit, which municipality) a
location number (GLN) stands for.

MedCom's FHIR messages name every sender and receiver by SOR code and GLN
(``MedComMessagingOrganization``); OIOXML letters name them by GLN and a department,
practice or municipality number. MedCom's conversion service looks the SOR code up in the
national SOR register; the adapter reads it from ``sor-directory.csv`` in the mappings
directory (``ADAPTER_MAPPINGS_DIR``), one line per organisation the deployment exchanges
messages with: ``gln,sor,municipality,name``. The package's sample holds the two parties of
MedCom's own conversion examples. ``municipality`` (four digits) marks a municipal unit: a
CareCommunication addressed to it is routed and shown to that municipality.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from adapter.errors import ConfigError, issue
from adapter.medcom.identifiers import gln_is_valid

FILE_NAME = "sor-directory.csv"
_SOR = re.compile(r"^[0-9]{11,18}$")
_MUNICIPALITY = re.compile(r"^[0-9]{4}$")


@dataclass(frozen=True)
class SorEntry:
    gln: str
    sor: str
    municipality: str | None
    name: str | None


@dataclass(frozen=True)
class SorDirectory:
    entries: tuple[SorEntry, ...] = ()

    def by_gln(self, gln: str | None) -> SorEntry | None:
        return next((e for e in self.entries if gln and e.gln == gln), None)

    def by_sor(self, sor: str | None) -> SorEntry | None:
        return next((e for e in self.entries if sor and e.sor == sor), None)

    def with_entries(self, more: list[SorEntry]) -> SorDirectory:
        return SorDirectory(self.entries + tuple(more))


def parse_sor_directory(text: str, source: str = FILE_NAME) -> SorDirectory:
    """Read the CSV; a broken line is one located ``GGOP-E501``."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != ["gln", "sor", "municipality", "name"]:
        raise ConfigError(issue("GGOP-E501", 1, source, "the header is gln,sor,municipality,name"))
    entries = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 4:
            raise ConfigError(issue("GGOP-E501", n, source, "four columns: gln,sor,municipality,name"))
        gln, sor, municipality, name = (c.strip() for c in row)
        if not gln_is_valid(gln):
            raise ConfigError(issue("GGOP-E501", n, source, "gln: 13 digits with a valid GS1 check digit"))
        if not _SOR.match(sor):
            raise ConfigError(issue("GGOP-E501", n, source, "sor: 11 to 18 digits"))
        if municipality and not _MUNICIPALITY.match(municipality):
            raise ConfigError(issue("GGOP-E501", n, source, "municipality: four digits or empty"))
        entries.append(SorEntry(gln, sor, municipality or None, name or None))
    return SorDirectory(tuple(entries))


@lru_cache(maxsize=8)
def load_sor_directory(mappings_dir: Path) -> SorDirectory:
    """``sor-directory.csv`` of a mappings directory (an empty directory when there is none)."""
    path = Path(mappings_dir) / FILE_NAME
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return SorDirectory()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path), type(exc).__name__)) from None
    return parse_sor_directory(text, str(path))
