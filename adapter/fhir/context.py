"""What every mapping function needs: deterministic ids, code tables, the receipt time."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapter.codes import CodeTables
from adapter.danish_time import iso_instant

if TYPE_CHECKING:
    from adapter.fhir.identity import Identity

ADAPTER_BASE = "http://ggop-adapter.dk/fhir"
# Fixed namespace for uuid5 resource ids: never change it, or resent messages
# would get new resource ids.
ID_NAMESPACE = uuid.UUID("6b0f7c52-3d55-5a8e-9a61-0c1f3c7e5a10")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def uuid_text(digest: bytes, version: int) -> str:
    """``str(uuid.UUID(bytes=digest[:16], version=version))``, without making the UUID object."""
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | (version << 4)
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def resource_id(sender_ean: str, letter_id: str, role: str) -> str:
    """``str(uuid.uuid5(ID_NAMESPACE, "sender|letter|role"))``."""
    return uuid_text(hashlib.sha1(_NAMESPACE_BYTES + f"{sender_ean}|{letter_id}|{role}".encode(),
                                  usedforsecurity=False).digest(), 5)


@dataclass
class MapContext:
    sender_ean: str
    letter_id: str
    received_at: dt.datetime
    tables: CodeTables
    _ids: dict[str, str] = field(default_factory=dict)
    # the deployment's id key: when given, a mapping may give the resources with an identity
    # their keyed ids as soon as it has made them (:func:`adapter.fhir.identity.assign_identities`),
    # so that every later reference is right the first time
    id_key: bytes | None = field(default=None, repr=False)
    # the identities so given, by keyed id (None until a mapping has given them)
    identities: dict[str, Identity] | None = field(default=None, repr=False)
    _received_iso: tuple[dt.datetime | None, str] = field(default=(None, ""), repr=False, compare=False)

    def id(self, role: str) -> str:
        rid = self._ids.get(role)
        if rid is None:
            rid = self._ids[role] = resource_id(self.sender_ean, self.letter_id, role)
        return rid

    def rename(self, new_ids: dict[str, str]) -> None:
        """Give the roles whose id is a key of ``new_ids`` that new id from now on."""
        for role, rid in self._ids.items():
            new = new_ids.get(rid)
            if new is not None:
                self._ids[role] = new

    def ref(self, role: str) -> dict:
        return {"reference": f"urn:uuid:{self.id(role)}"}

    def text(self, code: str) -> str:
        return self.tables.text(code)

    @property
    def received_iso(self) -> str:
        at, text = self._received_iso
        if at is not self.received_at:  # made once per receipt time, not once per resource
            text = iso_instant(self.received_at)
            self._received_iso = (self.received_at, text)
        return text
