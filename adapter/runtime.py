"""One runtime per process: everything the core needs, built once from the settings.

Every entry point (HTTP API, CLI commands, inbox watcher, re-evaluation sweep, outbox
worker) calls :func:`load_runtime` and passes the result on, so a municipality's rule
overrides, the code tables, the routing table and the XSDs are the same wherever a message
comes in::

    runtime = load_runtime(Settings.load())
    conversion = runtime.convert(raw)

Loading fails early with a located ``ConfigError`` (``GGOP-E501``) for a broken rule,
code table, routing or schema file. The store engine is opened on first use, so commands
that never touch the store (``convert``, ``validate``) need no database.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from adapter.codes import CodeTables, load_code_tables
from adapter.config import Settings
from adapter.data import MAPPINGS_DIR
from adapter.fhir.guard import preload as preload_guard
from adapter.id_key import load_id_key
from adapter.medcom.schema import preload_schemas
from adapter.pipeline import (
    Conversion,
    Limits,
    ReceiptResult,
    Validation,
    calendar_for,
    convert_bytes,
    receipt_for,
    validate_bytes,
)
from adapter.routing.recipients import LetterTerms, load_letter_terms
from adapter.routing.routes import RoutesFile
from adapter.rules.book import RuleBook, load_rule_book
from adapter.rules.calendar import DanishCalendar
from adapter.rules.model import RuleSet


@dataclass
class Runtime:
    """What a process shares: settings, code tables, rules, calendar, letter rules, limits,
    the routing file and (opened on first use) the store."""

    settings: Settings
    mappings_dir: Path
    tables: CodeTables
    rules: RuleSet  # the national rules (with national overrides)
    rule_book: RuleBook  # the rules per receiving municipality (with its own overrides)
    calendar: DanishCalendar
    letter_terms: LetterTerms
    limits: Limits
    routing_file: Path
    id_key: bytes = field(repr=False)
    _engine: Engine | None = field(default=None, repr=False)
    _engine_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def engine(self) -> Engine:
        """The store (migrated to the newest schema when first opened; once per runtime, also
        when several request threads ask at the same time)."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    from adapter.store.engine import open_store

                    self._engine = open_store(self.settings.database_url, id_key=self.id_key)
        return self._engine

    def rules_for(self, municipality: str | None) -> RuleSet:
        """The rules for plans received by ``municipality``: its own overrides apply to its plans only."""
        return self.rule_book.for_municipality(municipality)

    def routes(self) -> RoutesFile:
        """The routing table, read again when its file changes."""
        return RoutesFile(self.routing_file, tables=self.tables)

    def validate(self, raw: bytes) -> Validation:
        return validate_bytes(raw, self.tables, self.limits)

    def convert(self, raw: bytes, received_at: dt.datetime | None = None, *, check_models: bool | None = None,
                validation: Validation | None = None) -> Conversion:
        """The transaction Bundle for one message (raises InputError / MappingError)."""
        return convert_bytes(raw, received_at=received_at, tables=self.tables, limits=self.limits,
                             check_models=self.settings.check_models if check_models is None else check_models,
                             rules=self.rule_book, calendar=None, validation=validation, id_key=self.id_key,
                             letter_terms=self.letter_terms)

    def receipt(self, raw: bytes, received_at: dt.datetime | None = None) -> ReceiptResult:
        return receipt_for(raw, received_at, self.tables, self.limits)


def load_runtime(settings: Settings | None = None, *, engine: Engine | None = None) -> Runtime:
    """Build the runtime for ``settings`` (default: :meth:`Settings.load`)."""
    settings = settings or Settings.load()
    mappings = Path(settings.mappings_dir) if settings.mappings_dir else MAPPINGS_DIR
    tables = load_code_tables(mappings)
    book = load_rule_book(mappings, [Path(p) for p in settings.rule_overrides])
    rules = book.national
    preload_schemas()
    preload_guard()
    return Runtime(
        settings=settings,
        mappings_dir=mappings,
        tables=tables,
        rules=rules,
        rule_book=book,
        calendar=calendar_for(rules),
        letter_terms=load_letter_terms(mappings / "letter-tasks.yaml"),
        limits=Limits(settings.max_bytes, settings.max_depth, settings.max_elements, settings.max_attributes),
        routing_file=Path(settings.routing_file) if settings.routing_file else mappings / "routing.yaml",
        id_key=load_id_key(settings),
        _engine=engine,
    )
