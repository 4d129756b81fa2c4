"""What every mapping function needs: deterministic ids, code tables, the receipt time."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from adapter.codes import CodeTables

DANISH_TIME = ZoneInfo("Europe/Copenhagen")
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


def iso_instant(value: dt.datetime) -> str:
    return value.astimezone(DANISH_TIME).isoformat(timespec="seconds")


def local_datetime(date: str | None, time: str | None) -> dt.datetime | None:
    """MedCom date + hh:mm are Danish local time."""
    if not date:
        return None
    try:
        d = dt.date.fromisoformat(date)
        t = dt.time.fromisoformat(time) if time else dt.time(0, 0)
    except ValueError:
        return None
    return dt.datetime.combine(d, t, tzinfo=DANISH_TIME)


def fhir_datetime(date: str | None, time: str | None) -> str | None:
    """A FHIR dateTime: the date alone when no time is given, else with the Danish offset."""
    if not date:
        return None
    if not time:
        try:
            return dt.date.fromisoformat(date).isoformat()
        except ValueError:
            return None
    value = local_datetime(date, time)
    return value.isoformat(timespec="seconds") if value else None
