"""What every mapping function needs: deterministic ids, code tables, the receipt time."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from adapter.codes import CodeTables
from adapter.danish_time import iso_instant

ADAPTER_BASE = "http://ggop-adapter.dk/fhir"
# Fixed namespace for uuid5 resource ids: never change it, or resent messages
# would get new resource ids.
ID_NAMESPACE = uuid.UUID("6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10")


def resource_id(sender_ean: str, letter_id: str, role: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{sender_ean}|{letter_id}|{role}"))


@dataclass
class MapContext:
    sender_ean: str
    letter_id: str
    received_at: dt.datetime
    tables: CodeTables
    _ids: dict[str, str] = field(default_factory=dict)

    def id(self, role: str) -> str:
        rid = self._ids.get(role)
        if rid is None:
            rid = self._ids[role] = resource_id(self.sender_ean, self.letter_id, role)
        return rid

    def ref(self, role: str) -> dict:
        return {"reference": f"urn:uuid:{self.id(role)}"}

    def text(self, code: str) -> str:
        return self.tables.text(code)

    @property
    def received_iso(self) -> str:
        return iso_instant(self.received_at)
