"""The CapabilityStatement of ``/fhir``, built from the same tables the API routes and the
search module use, so it lists exactly what is implemented."""

from __future__ import annotations

import datetime as dt
from importlib import metadata

from adapter.store.search import COMMON_PARAMS, COUNT_LIMIT, INCLUDES, REVINCLUDES, SEARCH_PARAMS

FHIR_VERSION = "4.0.1"
FORMATS = ["json", "application/fhir+json"]

# Every type the API serves: read, vread, history-instance, search-type. Task also update.
TYPES: tuple[str, ...] = tuple(SEARCH_PARAMS)
UPDATABLE: frozenset[str] = frozenset({"Task"})

UPDATE_DOC = (
    "PUT with If-Match: W/\"<versionId>\" (412 when stale, 428 when missing); municipality clients only. "
    "Only status, businessStatus, output and note may change (422 naming the element otherwise). "
    "Outputs use http://ggop-adapter.dk/fhir/CodeSystem/task-output-types: offered-start (valueDate), "
    "citizen-informed (valueDateTime), confirmed-level (valueCodeableConcept, KL basal/avanceret). "
    "The update re-evaluates the deadlines of the plan the Task focuses."
)


# MedCom FHIR messaging (docs/medcom-fhir.md, adapter/api/process_message.py)
PROCESS_MESSAGE = {
    "name": "process-message",
    "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
    "documentation": (
        "POST [base]/$process-message with a MedCom CareCommunication message (event care-communication-message), "
        "FHIR XML or JSON, hospital token. Answered synchronously with a MedCom Acknowledgement message (event "
        "acknowledgement-message; ok, transient-error or fatal-error), in the format asked for by Accept, else the "
        "one received; resends by MedCom's reliable-messaging rules (Bundle.id x MessageHeader.id) get the "
        "original Acknowledgement."),
}
MESSAGING = {
    "documentation": (
        "MedCom messaging event codes (http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-eventCodes): "
        "care-communication-message is received at $process-message and sent to push routes with payload "
        "medcom-message; acknowledgement-message is sent in answer to every CareCommunication received."),
    "supportedMessage": [
        {"mode": "receiver", "definition": "http://medcomfhir.dk/ig/messagedefinitions/MessageDefinition/"
                                           "MedComCareCommunicationMessageDefinition|5.0"},
        {"mode": "sender", "definition": "http://medcomfhir.dk/ig/messagedefinitions/MessageDefinition/"
                                         "MedComCareCommunicationMessageDefinition|5.0"},
        {"mode": "sender", "definition": "http://medcomfhir.dk/ig/messagedefinitions/MessageDefinition/"
                                         "MedComAcknowledgementMessageDefinition|2.0"},
    ],
}


def _version() -> str:
    try:
        return metadata.version("ggop-adapter")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _resource(rtype: str) -> dict:
    interactions = [{"code": "read"}, {"code": "vread"}, {"code": "history-instance"}, {"code": "history-type"},
                    {"code": "search-type"}]
    if rtype in UPDATABLE:
        interactions.insert(2, {"code": "update", "documentation": UPDATE_DOC})
    params = [*COMMON_PARAMS.values(), *SEARCH_PARAMS[rtype].values()]
    out: dict = {
        "type": rtype,
        "interaction": interactions,
        "versioning": "versioned-update" if rtype in UPDATABLE else "versioned",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-match",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    includes = INCLUDES.get(rtype)
    if includes:
        out["searchInclude"] = [f"{rtype}:{p}" for p in includes]
    revincludes = REVINCLUDES.get(rtype)
    if revincludes:
        out["searchRevInclude"] = list(revincludes)
    out["searchParam"] = [{"name": p.name, "definition": p.definition, "type": p.type,
                           "documentation": p.documentation} for p in params]
    return out


def capability_statement(base_url: str, now: dt.datetime) -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.date().isoformat(),
        "publisher": "ggop-adapter",
        "kind": "instance",
        "software": {"name": "ggop-adapter", "version": _version()},
        "implementation": {
            "description": "MedCom G-GOP and XDIS91 to FHIR R4 adapter: Tasks and plans for municipalities",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": FORMATS,
        "rest": [{
            "mode": "server",
            "documentation": (
                "Search results are sorted by meta.lastUpdated, then id (_sort: _lastUpdated, -_lastUpdated, _id, "
                "-_id); _count defaults to 50 (at most 500); next links carry an opaque _cursor (keyset paging: a "
                "walk sees every match at least once, also under concurrent updates). Bundle.total is given on the "
                f"first page of a search or history feed when at most {COUNT_LIMIT:,} match, and left out of the "
                "_cursor pages that follow; _total=accurate gives it exactly on every page, _total=none on none "
                "(_total=estimate: as without it); _summary=count is always exact. _elements "
                "(top-level names), _include and _revinclude as listed per type; POST [type]/_search takes the "
                "parameters form-encoded. [type]/_history and _history with _since and _count give every "
                "version written since, oldest first, in cursor pages: the sync feed (docs/sync.md). "
                "meta.lastUpdated is kept to the millisecond, as served. Unknown parameters are ignored and listed "
                "in an OperationOutcome entry (Prefer: handling=strict refuses them with 400). A municipality "
                "client sees only its own citizens' resources; others' are answered 404 like unknown ids."),
            "security": {
                "cors": False,
                "service": [{"text": "Bearer token"}],
                "description": (
                    "Every interaction except metadata needs Authorization: Bearer <token>. Tokens are issued per "
                    "client (municipality, operator); a municipality client sees and updates only resources "
                    "concerning its own citizens, an operator reads everything and updates nothing, hospital "
                    "clients have no access to /fhir."),
            },
            "resource": [_resource(t) for t in TYPES],
            "interaction": [{"code": "history-system"}],
            "operation": [PROCESS_MESSAGE],
        }],
        "messaging": [MESSAGING],
    }
