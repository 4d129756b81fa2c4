"""The pure core, end to end: bytes → typed message → issues → FHIR Bundle → receipt.

No I/O, no clock: the receipt time and the code tables are passed in (the
receipt time defaults to the envelope's Sent time, so the output is a pure
function of the input).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from adapter.codes import CodeTables, load_code_tables
from adapter.danish_time import DANISH_TIME, iso_instant, local_datetime
from adapter.errors import (
    AdapterError,
    BusinessRuleError,
    InputError,
    Issue,
    MappingError,
    UnsupportedMessageError,
    errors_of,
    issue,
)
from adapter.fhir.bundle import check_with_models, transaction_bundle
from adapter.fhir.context import MapContext
from adapter.fhir.guard import check_resources
from adapter.fhir.identity import identify
from adapter.fhir.letter import resources_from_letter
from adapter.fhir.plan import resources_from_plan
from adapter.medcom.checks import check_correspondence, check_ggop, check_receipt
from adapter.medcom.detect import Parsed, parse_message
from adapter.medcom.identifiers import normalise_municipality_code
from adapter.medcom.model import CorrespondenceMessage, GgopMessage, ReceiptMessage
from adapter.medcom.receipt_writer import (
    ReceiptAddress,
    build_receipt,
    salvage_address,
    salvage_sent,
)
from adapter.medcom.schema import schema_findings
from adapter.medcom.xmlsafe import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ELEMENTS,
    read_xml,
)
from adapter.routing.recipients import LetterTerms, letter_tasks, with_tasks
from adapter.rules.book import RuleBook
from adapter.rules.calendar import DanishCalendar
from adapter.rules.loader import load_rules
from adapter.rules.model import RuleSet
from adapter.rules.schedule import schedule
from adapter.rules.stratify import stratify
from adapter.rules.trace import trace


@dataclass
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES


@dataclass
class Validation:
    """A message read and checked: accepted when no issue is an error."""

    parsed: Parsed | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.parsed is not None and not errors_of(self.issues)

    @property
    def message(self):
        return self.parsed.message if self.parsed else None


@dataclass
class Conversion:
    bundle: dict
    issues: list[Issue]
    kind: str
    message: GgopMessage | CorrespondenceMessage
    trace: dict | None = None  # G-GOP: stratification proposal and deadlines with their rules


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    return load_rules()


@lru_cache(maxsize=8)
def _calendar(days: frozenset[str] | None) -> DanishCalendar:
    return DanishCalendar(days) if days is not None else DanishCalendar()


def calendar_for(rules: RuleSet) -> DanishCalendar:
    """The Danish calendar with the optional days off the rule settings name."""
    days = rules.deadlines.settings.get("optional_days_off")
    return _calendar(frozenset(days) if days is not None else None)


def receiving_municipality(msg: GgopMessage | CorrespondenceMessage) -> str | None:
    """The four-digit code of the municipality a message is addressed to, if it names one."""
    receiver = msg.receiver
    if receiver is None or receiver.identifier is None:
        return None
    return normalise_municipality_code(receiver.identifier.value)


def apply_rules(msg: GgopMessage, at: dt.datetime, rules: RuleSet | None = None,
                calendar: DanishCalendar | None = None):
    """Stratification proposal and deadline schedule for a plan, and their warnings as issues."""
    rules = rules or default_rules()
    calendar = calendar or calendar_for(rules)
    proposal = stratify(msg, rules, at.astimezone(DANISH_TIME).date())
    plan_schedule = schedule(msg, rules, at, calendar)
    issues = [issue(w.code, w.line, w.xpath, w.message_en) for w in plan_schedule.warnings
              if w.code != "GGOP-W332"]  # a missing discharge time is already reported by the checks
    return proposal, plan_schedule, issues


def validate_bytes(raw: bytes, tables: CodeTables | None = None, limits: Limits | None = None) -> Validation:
    """Read and check a message. Never raises for bad input: the issues say what is wrong."""
    tables = tables or load_code_tables()
    limits = limits or Limits()
    try:
        doc = read_xml(raw, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                       max_elements=limits.max_elements, max_attributes=limits.max_attributes)
        parsed = parse_message(doc.root)
    except InputError as exc:
        return Validation(None, exc.issues)
    issues = list(doc.warnings) + list(parsed.warnings)
    issues += schema_findings(doc.root, parsed.schema_key)
    msg = parsed.message
    if isinstance(msg, GgopMessage):
        issues += check_ggop(msg, tables.municipalities.keys())
    elif isinstance(msg, CorrespondenceMessage):
        issues += check_correspondence(msg)
    elif isinstance(msg, ReceiptMessage):
        issues += check_receipt(msg)
    return Validation(parsed, _sorted(issues))


def _sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (not i.is_error, i.location.line or 0, i.code))


def receipt_time(msg, received_at: dt.datetime | None) -> dt.datetime:
    if received_at is not None:
        return received_at
    sent = local_datetime(msg.envelope.sent_date.value if msg.envelope.sent_date else None,
                          msg.envelope.sent_time.value if msg.envelope.sent_time else None)
    if sent is None:  # refused earlier (GGOP-E320); keep the function total
        raise BusinessRuleError(issue("GGOP-E320", msg.envelope.where.line, msg.envelope.where.xpath))
    return sent


def finish_bundle(resources: list[dict], ctx: MapContext, at: dt.datetime, *, id_key: bytes, check_models: bool,
                  letter: CorrespondenceMessage | None = None, letter_terms: LetterTerms | None = None) -> dict:
    """The transaction Bundle of mapped resources: keyed identities, a letter's Tasks
    (``letter-tasks.yaml``, here so that ``convert`` shows what the service stores and sends),
    the compiled schema of what the mappings write (always) and the full model check."""
    resources, identities = identify(resources, id_key, ctx.identities if ctx.id_key == id_key else None)
    bundle = transaction_bundle(resources, ctx, iso_instant(at), identities)
    if letter is not None:
        bundle = with_tasks(bundle, letter_tasks(letter, bundle, ctx.tables, letter_terms))
    check_resources(bundle)
    if check_models:
        check_with_models(bundle)
    return bundle


def convert_bytes(raw: bytes, received_at: dt.datetime | None = None, tables: CodeTables | None = None,
                  limits: Limits | None = None, check_models: bool = True, rules: RuleSet | RuleBook | None = None,
                  calendar: DanishCalendar | None = None, validation: Validation | None = None, *,
                  id_key: bytes, letter_terms: LetterTerms | None = None) -> Conversion:
    """Convert one message to a transaction Bundle, or raise InputError / MappingError.

    ``validation`` reuses a :func:`validate_bytes` result for these bytes. Every resource is
    checked against the compiled JSON Schema of what the adapter emits
    (:mod:`adapter.fhir.guard`); ``check_models`` also parses each with the fhir.resources
    models (the full check: on by default here, in the tests and for ``convert --strict``;
    the service runs it when ``ADAPTER_CHECK_MODELS`` is set). ``id_key`` is the deployment's
    secret behind the ids of Patients, Organizations and Practitioners
    (:mod:`adapter.fhir.identity`)."""
    tables = tables or load_code_tables()
    result = validation if validation is not None else validate_bytes(raw, tables, limits)
    parsed = result.parsed
    if parsed is None or not result.accepted:
        raise InputError(result.issues)
    msg = result.message
    if isinstance(msg, ReceiptMessage):
        raise UnsupportedMessageError([issue("GGOP-E402", msg.letter.where.line, msg.letter.where.xpath)])
    at = receipt_time(msg, received_at)
    ctx = MapContext(sender_ean=msg.sender.ean.value, letter_id=msg.letter.identifier.value,
                     received_at=at, tables=tables, id_key=id_key)
    plan_trace = None
    issues = list(result.issues)
    try:
        if isinstance(msg, GgopMessage):
            plan_rules = rules.for_municipality(receiving_municipality(msg)) if isinstance(rules, RuleBook) else rules
            proposal, plan_schedule, rule_issues = apply_rules(msg, at, plan_rules, calendar)
            issues = _sorted(issues + rule_issues)
            plan_trace = trace(proposal, plan_schedule)
            resources = resources_from_plan(msg, raw, ctx, proposal, plan_schedule)
        else:
            resources = resources_from_letter(msg, raw, ctx)
        bundle = finish_bundle(resources, ctx, at, id_key=id_key, check_models=check_models,
                               letter=msg if isinstance(msg, CorrespondenceMessage) else None,
                               letter_terms=letter_terms)
    except AdapterError:
        raise
    except (KeyError, AttributeError, TypeError, ValueError) as exc:  # a defect of ours, located
        raise MappingError(issue("GGOP-E401", detail=type(exc).__name__)) from exc
    return Conversion(bundle, issues, parsed.kind, msg, plan_trace)


@dataclass
class ReceiptResult:
    xml: bytes | None
    positive: bool
    issues: list[Issue]


def receipt_for(raw: bytes, received_at: dt.datetime | None = None, tables: CodeTables | None = None,
                limits: Limits | None = None) -> ReceiptResult:
    """The MedCom receipt the sender gets for this message (None when it cannot be addressed)."""
    result = validate_bytes(raw, tables, limits)
    msg = result.message
    addr: ReceiptAddress | None
    if msg is not None and isinstance(msg, (GgopMessage, CorrespondenceMessage)) \
            and msg.envelope.identifier and msg.sender and msg.sender.ean and msg.receiver and msg.receiver.ean:
        addr = ReceiptAddress(
            envelope_identifier=msg.envelope.identifier.value[:14],
            letter_identifier=msg.letter.identifier.value[:14] if msg.letter.identifier else None,
            version_code=msg.letter.version_code.value if msg.letter.version_code else None,
            sender_ean=msg.sender.ean.value, receiver_ean=msg.receiver.ean.value)
    else:
        addr = salvage_address(raw)
    if addr is None:
        return ReceiptResult(None, False, result.issues)
    at = received_at
    if at is None:
        try:
            at = receipt_time(msg, None) if msg is not None else None
        except BusinessRuleError:
            at = None
    if at is None:  # an unreadable message: its envelope's Sent time, if the bytes show one
        sent = salvage_sent(raw)
        at = local_datetime(*sent) if sent else None
    if at is None:
        return ReceiptResult(None, False, result.issues or [issue("GGOP-E320")])
    if result.accepted and not isinstance(msg, ReceiptMessage):
        return ReceiptResult(build_receipt(addr, at), True, result.issues)
    issues = result.issues or [issue("GGOP-E101")]
    if isinstance(msg, ReceiptMessage):
        issues = [issue("GGOP-E402", msg.letter.where.line, msg.letter.where.xpath)]
    first = next((i for i in issues if i.is_error), issues[0])
    return ReceiptResult(build_receipt(addr, at, issues, first.info.refuse_code), False, issues)
