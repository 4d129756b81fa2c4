"""One error tree and one issue catalogue for the whole adapter.

Every problem the adapter reports is an :class:`Issue` with a stable code from
:data:`CATALOGUE`, a severity, and a :class:`Location` (line, XPath, FHIR path).
Messages are fixed texts with optional *safe* parameters (element names, counts,
allowed values): never the value of a CPR number, a name or free text.

Exceptions (:class:`AdapterError` and its subclasses) carry one or more issues;
the CLI, the API and the MedCom negative receipt all render the same issues.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Location:
    """Where an issue is: source line, an XPath of local names, and/or a FHIR path."""

    line: int | None = None
    xpath: str | None = None
    fhir_path: str | None = None

    def render(self) -> str:
        return self.xpath or self.fhir_path or "/"


@dataclass(frozen=True)
class CodeInfo:
    severity: str
    title: str
    refuse_code: str = "ikke_specificeret"  # MedCom XCTL02 RefuseCode when this refuses
    http_status: int = 422
    issue_type: str = "invalid"  # FHIR OperationOutcome issue.code


# The catalogue of stable codes. Ranges:
#   E0xx  reading bytes as XML (safety, well-formedness, encoding)
#   E1xx  message detection (which MedCom message this is)
#   W2xx  schema deviations (own XSDs; real messages are messy, so these warn)
#   E3xx/W3xx  business rules on the message content
#   E4xx  mapping to FHIR
#   E5xx  configuration and code tables
#   E6xx/W6xx  MedCom FHIR messaging: CareCommunication in and out, Acknowledgement
#   E7xx/W7xx  operator console and metrics
CATALOGUE: dict[str, CodeInfo] = {
    # --- XML reading
    "GGOP-E001": CodeInfo(ERROR, "The message is not well-formed XML", "syntaksfejl", 400, "structure"),
    "GGOP-E002": CodeInfo(ERROR, "A DOCTYPE/DTD is not allowed in MedCom messages", "syntaksfejl", 400, "security"),
    "GGOP-E003": CodeInfo(
        ERROR, "The message is larger than the configured size limit", "syntaksfejl", 413, "too-long"
    ),
    "GGOP-E004": CodeInfo(
        ERROR, "The XML is nested deeper than the configured depth limit", "syntaksfejl", 400, "too-costly"
    ),
    "GGOP-E005": CodeInfo(ERROR, "The message is empty", "syntaksfejl", 400, "required"),
    "GGOP-E006": CodeInfo(
        ERROR, "The bytes cannot be decoded in the declared encoding", "syntaksfejl", 400, "structure"
    ),
    "GGOP-E007": CodeInfo(ERROR, "Entity declarations and references are not allowed", "syntaksfejl", 400, "security"),
    "GGOP-E009": CodeInfo(ERROR, "The file cannot be read", "ikke_specificeret", 400, "not-found"),
    "GGOP-E010": CodeInfo(ERROR, "Wrong content type for a MedCom message", "syntaksfejl", 415, "not-supported"),
    "GGOP-E011": CodeInfo(
        ERROR, "The XML has more elements than the configured limit", "syntaksfejl", 400, "too-costly"
    ),
    "GGOP-E012": CodeInfo(
        ERROR, "An element has more attributes than the configured limit", "syntaksfejl", 400, "too-costly"
    ),
    "GGOP-W008": CodeInfo(
        WARNING, "UTF-8 bytes were declared as ISO-8859-1; read as UTF-8", http_status=200, issue_type="informational"
    ),
    # --- detection
    "GGOP-E101": CodeInfo(
        ERROR,
        "Unsupported message: not a G-GOP, XDIS91 correspondence or XCTL receipt",
        "problem_med_version", 422, "not-supported",
    ),
    "GGOP-E103": CodeInfo(ERROR, "The message holds no letter", "syntaksfejl", 422, "required"),
    "GGOP-W104": CodeInfo(
        WARNING,
        "The message holds more than one letter; only the first is converted",
        http_status=200, issue_type="informational",
    ),
    # --- schema deviations (warnings: schemas are our own, real messages vary)
    "GGOP-W201": CodeInfo(
        WARNING, "Element not known to the schema at this place", http_status=200, issue_type="structure"
    ),
    "GGOP-W202": CodeInfo(WARNING, "Element missing that the schema expects", http_status=200, issue_type="structure"),
    "GGOP-W203": CodeInfo(WARNING, "Value does not match the schema's type", http_status=200, issue_type="value"),
    "GGOP-W204": CodeInfo(WARNING, "Schema deviation", http_status=200, issue_type="structure"),
    "GGOP-W205": CodeInfo(
        WARNING,
        "Element is in the other MedCom namespace than the schema expects",
        http_status=200, issue_type="structure",
    ),
    "GGOP-W206": CodeInfo(
        WARNING, "More schema deviations than are reported one by one", http_status=200, issue_type="informational",
    ),
    # --- business rules: essentials and malformed values (errors)
    "GGOP-E301": CodeInfo(ERROR, "Envelope identifier is missing", "syntaksfejl", 422, "required"),
    "GGOP-E302": CodeInfo(ERROR, "Letter identifier is missing", "syntaksfejl", 422, "required"),
    "GGOP-E303": CodeInfo(
        ERROR, "Patient has neither CPR number nor alternative identifier", "syntaksfejl", 422, "required"
    ),
    "GGOP-E304": CodeInfo(ERROR, "CPR number is not 10 digits with a valid date part", "syntaksfejl", 422, "value"),
    "GGOP-E305": CodeInfo(ERROR, "Type of rehabilitation plan is missing", "syntaksfejl", 422, "required"),
    "GGOP-E306": CodeInfo(
        ERROR,
        "Type of rehabilitation plan is not almen, specialiseret or rehabilitering",
        "syntaksfejl", 422, "code-invalid",
    ),
    "GGOP-E307": CodeInfo(ERROR, "Receiver is missing", "problem_med_modtagerID", 422, "required"),
    "GGOP-E308": CodeInfo(
        ERROR, "Receiver location number (GLN) is missing or not 13 digits", "ukendt_lokationsnummer", 422, "value"
    ),
    "GGOP-E309": CodeInfo(
        ERROR, "Receiver location number (GLN) fails the GS1 check digit", "ukendt_lokationsnummer", 422, "value"
    ),
    "GGOP-E310": CodeInfo(
        ERROR, "Sender location number (EAN/GLN) is missing", "ukendt_lokationsnummer", 422, "required"
    ),
    "GGOP-E311": CodeInfo(
        ERROR,
        "Sender location number (GLN) is not 13 digits or fails the GS1 check digit",
        "ukendt_lokationsnummer", 422, "value",
    ),
    "GGOP-E312": CodeInfo(ERROR, "A date or time is malformed", "syntaksfejl", 422, "value"),
    "GGOP-E313": CodeInfo(
        ERROR, "Identifier is longer than MedCom allows (14 characters)", "syntaksfejl", 422, "value"
    ),
    "GGOP-E315": CodeInfo(
        ERROR,
        "Receiver municipality code is not a known Danish municipality",
        "problem_med_modtagerID", 422, "code-invalid",
    ),
    "GGOP-E316": CodeInfo(ERROR, "Letter status code is not known", "syntaksfejl", 422, "code-invalid"),
    "GGOP-E317": CodeInfo(ERROR, "Sender is missing", "syntaksfejl", 422, "required"),
    "GGOP-E318": CodeInfo(ERROR, "Consent answer is not ja or nej", "syntaksfejl", 422, "code-invalid"),
    "GGOP-E319": CodeInfo(
        ERROR, "Letter version code does not match the message", "problem_med_version", 422, "not-supported"
    ),
    "GGOP-E321": CodeInfo(
        ERROR, "Letter identifier reused for different content", "ikke_specificeret", 422, "duplicate"
    ),
    "GGOP-E320": CodeInfo(ERROR, "Envelope sent date is missing", "syntaksfejl", 422, "required"),
    # --- business rules: tolerated defects (warnings)
    "GGOP-W330": CodeInfo(
        WARNING,
        "CPR number fails the modulus-11 check (allowed since 2007)",
        http_status=200, issue_type="informational",
    ),
    "GGOP-W331": CodeInfo(
        WARNING,
        "Location number (GLN) of a copy receiver, contact or location fails the GS1 check; "
        "it is kept but not routable by GLN",
        http_status=200, issue_type="value",
    ),
    "GGOP-W332": CodeInfo(
        WARNING,
        "Discharge time is missing or only given as text; deadlines cannot be computed from it",
        http_status=200, issue_type="incomplete",
    ),
    "GGOP-W333": CodeInfo(WARNING, "Consent answer is missing", http_status=200, issue_type="incomplete"),
    "GGOP-W334": CodeInfo(
        WARNING, "Diagnosis code type is not known; kept as text", http_status=200, issue_type="code-invalid"
    ),
    "GGOP-W335": CodeInfo(
        WARNING,
        "Plan to rehabilitering lacks the extended description of functioning (BEK §2 stk. 3)",
        http_status=200, issue_type="incomplete",
    ),
    "GGOP-W336": CodeInfo(
        WARNING, "Receiver is not identified by municipality code", http_status=200, issue_type="incomplete"
    ),
    "GGOP-W337": CodeInfo(
        WARNING, "Envelope acknowledgement code is not known", http_status=200, issue_type="code-invalid"
    ),
    "GGOP-W339": CodeInfo(
        WARNING,
        "A copy to the GP is asked for, but the citizen has not consented to sharing the plan "
        "(ConsentInformed is not 'ja'); no copy is sent to the GP",
        http_status=200, issue_type="business-rule",
    ),
    "GGOP-W341": CodeInfo(
        WARNING,
        "Sender or receiver location number (GLN) of a correspondence letter fails the GS1 check digit; "
        "kept, not routable by GLN",
        http_status=200, issue_type="value",
    ),
    "GGOP-W342": CodeInfo(
        WARNING,
        "The plan's start condition cannot be read and needs manual reading; the start Task carries "
        "the standard deadline as provisional and the free-choice deadline waits for the reading",
        http_status=200, issue_type="informational",
    ),
    "GGOP-W343": CodeInfo(
        WARNING,
        "The plan type is missing or unknown; no deadlines were computed",
        http_status=200, issue_type="incomplete",
    ),
    "GGOP-W344": CodeInfo(
        WARNING, "A deadline cannot be computed for this date", http_status=200, issue_type="informational"
    ),
    "GGOP-W345": CodeInfo(
        WARNING, "The offered start is before the plan's earliest start", http_status=200, issue_type="business-rule"
    ),
    "GGOP-W346": CodeInfo(
        WARNING,
        "The plan was received after some of its deadlines had passed; those Tasks say so",
        http_status=200, issue_type="business-rule",
    ),
    "GGOP-W338": CodeInfo(
        WARNING,
        "A date or time of a non-essential element is malformed; it is left out",
        http_status=200, issue_type="value",
    ),
    # --- mapping
    "GGOP-E401": CodeInfo(
        ERROR, "The converted resources do not form a valid FHIR R4 Bundle", "ikke_specificeret", 500, "exception"
    ),
    "GGOP-E402": CodeInfo(
        ERROR,
        "A receipt cannot be converted: receipts are answers, not plans",
        "problem_med_version", 422, "not-supported",
    ),
    # --- operator console and metrics (E7xx/W7xx)
    "GGOP-E701": CodeInfo(ERROR, "Console sign-in refused: unknown token, or a client without console access",
                          http_status=401, issue_type="login"),
    "GGOP-E702": CodeInfo(ERROR, "The form is stale or did not come from the console (CSRF check failed); "
                          "reload the page and try again", http_status=403, issue_type="security"),
    "GGOP-E703": CodeInfo(ERROR, "No such message, or not one this client may see", http_status=404,
                          issue_type="not-found"),
    "GGOP-E704": CodeInfo(ERROR, "This client's role may not do this in the console", http_status=403,
                          issue_type="forbidden"),
    "GGOP-E705": CodeInfo(ERROR, "A search or form value is malformed", http_status=400, issue_type="invalid"),
    "GGOP-E706": CodeInfo(ERROR, "No such outbox row, or none in a state that allows this", http_status=409,
                          issue_type="conflict"),
    "GGOP-E707": CodeInfo(ERROR, "Scraping /metrics needs an operator's bearer token", http_status=401,
                          issue_type="login"),
    "GGOP-E708": CodeInfo(ERROR, "The console's session secret is unreadable or too short", http_status=500,
                          issue_type="exception"),
    "GGOP-W701": CodeInfo(WARNING, "The stored message is not shown: it cannot be read safely enough to mask "
                          "patient data", http_status=200, issue_type="informational"),
    "GGOP-W702": CodeInfo(WARNING, "The explanation cannot be computed again for this message", http_status=200,
                          issue_type="informational"),
    # --- MedCom FHIR messaging (CareCommunication in and out, Acknowledgement)
    "GGOP-E601": CodeInfo(ERROR, "Not a FHIR message in XML or JSON", "syntaksfejl", 400, "structure"),
    "GGOP-E602": CodeInfo(ERROR, "The FHIR JSON is not well-formed or nested too deep", "syntaksfejl", 400,
                          "structure"),
    "GGOP-E603": CodeInfo(ERROR, "An element or attribute is not allowed at this place", "syntaksfejl", 400,
                          "structure"),
    "GGOP-E604": CodeInfo(ERROR, "A primitive value has the wrong format", "syntaksfejl", 422, "value"),
    "GGOP-E605": CodeInfo(
        ERROR, "Not a MedCom CareCommunication message (a message Bundle with a care-communication-message "
        "MessageHeader first)", "problem_med_version", 422, "not-supported"),
    "GGOP-E606": CodeInfo(ERROR, "A required element of the message is missing", "syntaksfejl", 422, "required"),
    "GGOP-E607": CodeInfo(ERROR, "A reference in the message does not resolve to a resource of the Bundle",
                          "syntaksfejl", 422, "invalid"),
    "GGOP-E608": CodeInfo(ERROR, "An identifier of the message is malformed", "syntaksfejl", 422, "value"),
    "GGOP-E609": CodeInfo(ERROR, "The message is not addressed to a recipient this adapter serves",
                          "problem_med_modtagerID", 422, "not-found"),
    "GGOP-E610": CodeInfo(ERROR, "Bundle.id was used before for another message", "ikke_specificeret", 422,
                          "duplicate"),
    "GGOP-E611": CodeInfo(ERROR, "MessageHeader.id was used before for other content", "ikke_specificeret", 422,
                          "duplicate"),
    "GGOP-E612": CodeInfo(ERROR, "The message has not exactly one Patient with a CPR number or replacement CPR",
                          "syntaksfejl", 422, "required"),
    "GGOP-E613": CodeInfo(ERROR, "No SOR code is known for this organisation's location number (GLN): add it to "
                          "the SOR directory", "ukendt_lokationsnummer", 422, "not-found"),
    "GGOP-E614": CodeInfo(ERROR, "A cancelled letter (annulleretbrev) has no CareCommunication form",
                          "problem_med_version", 422, "not-supported"),
    "GGOP-E615": CodeInfo(ERROR, "Not a MedCom Acknowledgement message", "problem_med_version", 422,
                          "not-supported"),
    "GGOP-E616": CodeInfo(ERROR, "The message cannot be processed now; send it again later", "ikke_specificeret",
                          503, "transient"),
    "GGOP-W602": CodeInfo(WARNING, "An attachment's content is not carried over to the municipal Communication; "
                          "it stays in the stored message", http_status=200, issue_type="informational"),
    # --- configuration and internal
    "GGOP-E900": CodeInfo(ERROR, "Internal error while processing the message", "ikke_specificeret", 500, "exception"),
    "GGOP-E901": CodeInfo(
        ERROR, "Authentication required: send a valid bearer token", "ikke_specificeret", 401, "login"
    ),
    "GGOP-E902": CodeInfo(ERROR, "This client may not do this", "ikke_specificeret", 403, "forbidden"),
    "GGOP-E903": CodeInfo(ERROR, "The request cannot be served", "ikke_specificeret", 400, "processing"),
    "GGOP-E905": CodeInfo(
        ERROR, "The message did not arrive within the time the service waits for a body",
        "ikke_specificeret", 408, "timeout",
    ),
    "GGOP-E904": CodeInfo(
        ERROR, "The store is unavailable or full: nothing was stored; send again later",
        "ikke_specificeret", 503, "transient",
    ),
    "GGOP-E501": CodeInfo(ERROR, "A mapping file is missing or broken", "ikke_specificeret", 500, "exception"),
    "GGOP-E502": CodeInfo(
        ERROR, "The id key is unreadable, too short, or not the key this database was filled with",
        "ikke_specificeret", 500, "exception",
    ),
}


@dataclass(frozen=True)
class Issue:
    code: str
    location: Location = field(default_factory=Location)
    detail: str | None = None  # safe detail: element names, allowed values; never patient data

    @property
    def info(self) -> CodeInfo:
        return CATALOGUE[self.code]

    @property
    def severity(self) -> str:
        return self.info.severity

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @property
    def message(self) -> str:
        return self.info.title + (f": {self.detail}" if self.detail else "")

    def render_line(self, filename: str = "-") -> str:
        line = self.location.line if self.location.line is not None else 0
        return f"{filename}:{line} {self.location.render()} {self.code} {self.message}"

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "line": self.location.line,
            "xpath": self.location.xpath,
            "fhirPath": self.location.fhir_path,
        }


def issue(code: str, line: int | None = None, xpath: str | None = None,
          detail: str | None = None, fhir_path: str | None = None) -> Issue:
    """Build an issue, checking that its code is in the catalogue."""
    if code not in CATALOGUE:
        raise KeyError(f"unknown issue code {code}")
    return Issue(code, Location(line, xpath, fhir_path), detail)


class AdapterError(Exception):
    """Base of every error the adapter raises on purpose."""

    def __init__(self, issues: Iterable[Issue] | Issue):
        if isinstance(issues, Issue):
            issues = [issues]
        self.issues: list[Issue] = list(issues)
        super().__init__("; ".join(i.render_line() for i in self.issues))

    @property
    def first(self) -> Issue:
        return next((i for i in self.issues if i.is_error), self.issues[0])

    @property
    def http_status(self) -> int:
        return self.first.info.http_status

    @property
    def refuse_code(self) -> str:
        return self.first.info.refuse_code


class InputError(AdapterError):
    """The sender's message cannot be accepted."""


class XmlSyntaxError(InputError):
    """Bytes are not acceptable XML (syntax, safety, size, encoding)."""


class UnsupportedMessageError(InputError):
    """Well-formed XML, but not a message this adapter handles."""


class BusinessRuleError(InputError):
    """Essential content missing or malformed."""


class MappingError(AdapterError):
    """The adapter could not build valid FHIR from an accepted message (a defect of ours)."""


class ConfigError(AdapterError):
    """A configuration or mapping file is missing or broken."""


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    return [i for i in issues if i.is_error]
