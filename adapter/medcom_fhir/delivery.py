"""The ``payload: medcom-message`` of a push route: a letter's outbox payload (its transaction
Bundle) as a MedCom CareCommunication message, made when it is delivered.

Bundle.id and MessageHeader.id derive from the outbox row (message and recipient), so a
redelivery is the same message again and a MedCom receiver answers it with its original
Acknowledgement (MedCom reliable messaging: both ids known). The SOR directory is the one of
the process's mappings directory (``ADAPTER_MAPPINGS_DIR``, else the package's).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from adapter.data import MAPPINGS_DIR
from adapter.errors import AdapterError
from adapter.medcom_fhir.outbound import carecommunication_message, message_ids
from adapter.medcom_fhir.sor import SorDirectory, load_sor_directory


@lru_cache(maxsize=1)
def _directory() -> SorDirectory:
    from adapter.config import Settings

    folder = Settings.load().mappings_dir
    return load_sor_directory(Path(folder) if folder else MAPPINGS_DIR)


def medcom_message(payload: dict, *, message_id: int, recipient: str, sor: SorDirectory | None = None) -> dict:
    """The CareCommunication message of an outbox row; ValueError (naming codes only) when the
    payload is no letter or cannot become one."""
    kinds = {e.get("resource", {}).get("resourceType") for e in payload.get("entry", [])}
    if "Communication" not in kinds or "ServiceRequest" in kinds:
        raise ValueError("the payload is not a correspondence letter")
    bundle_id, header_id = message_ids(f"outbox|{message_id}|{recipient}")
    try:
        return carecommunication_message(payload, sor or _directory(), bundle_id=bundle_id, header_id=header_id)
    except AdapterError as exc:
        raise ValueError(",".join(i.code for i in exc.issues)) from None
