"""The store's tables (SQLAlchemy Core). SQLite (WAL) by default, PostgreSQL by URL.

Alembic migrations in ``adapter/store/migrations`` create exactly these tables; a test
checks that the migrated database and this metadata agree.

No table holds patient data outside ``messages.raw`` (the message as received) and
``resources.content`` / ``resource_history.content`` (the FHIR resources): the audit trail
and the outbox refer to ids only.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

# One row per message received, stored before anything else is done with it.
messages = Table(
    "messages", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("kind", String(16)),  # ggop | xdis91 | xctl | None when unreadable
    Column("sender_ean", String(35)),
    Column("receiver_ean", String(35)),
    Column("envelope_id", String(35)),
    Column("letter_id", String(35)),
    Column("letter_status", String(20)),  # nytbrev | rettetbrev | annulleretbrev
    Column("municipality", String(4)),  # receiving municipality code, four digits
    # received → accepted | refused | duplicate | superseded
    Column("state", String(16), nullable=False),
    Column("issue_codes", JSON),  # codes and locations only
    Column("receipt", LargeBinary),
    Column("receipt_positive", Boolean),
    Column("http_status", Integer),
    Column("client", String(100)),
    Column("duplicate_of", ForeignKey("messages.id")),
    Column("supersedes", ForeignKey("messages.id")),
)
# MedCom reliable messaging: one accepted message per (sender, envelope id, letter id).
Index("ix_messages_identity", messages.c.sender_ean, messages.c.envelope_id, messages.c.letter_id)
Index("ix_messages_letter", messages.c.sender_ean, messages.c.letter_id)

# The identity a first delivery claims; a concurrent duplicate fails on this constraint.
message_keys = Table(
    "message_keys", metadata,
    Column("sender_ean", String(35), primary_key=True),
    Column("envelope_id", String(35), primary_key=True),
    Column("letter_id", String(35), primary_key=True),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("sha256", String(64), nullable=False),
)

# Current version of every FHIR resource the adapter holds.
resources = Table(
    "resources", metadata,
    Column("type", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    # whose plan this is (access control); NULL for the shared types (Patient, Organization,
    # Practitioner, PractitionerRole), which each municipality sees through resource_access
    Column("municipality", String(4)),
    Column("patient_id", String(64)),  # the Patient resource it concerns
    Column("message_id", ForeignKey("messages.id")),
    Column("content", JSON, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    # shared types: when the message that wrote this version was written (UTC); an older
    # message arriving later does not overwrite it
    Column("as_of", DateTime(timezone=True)),
    Column("replaced_by", String(64)),  # a merged duplicate: the id of the resource it became
    # the resource's own ``status`` code (a copy of content.status, for searching on it in SQL)
    Column("status", String(64)),
)
# A municipality's pages: by type, in _lastUpdated order, and (Task?status=…) by status first.
# Partial (live rows only, as every search asks): a page's total is counted from the index
# alone (an index-only scan), without reading each matching row.
_LIVE = resources.c.deleted == false()
Index("ix_resources_scope_updated", resources.c.type, resources.c.municipality, resources.c.last_updated,
      resources.c.id, postgresql_where=_LIVE, sqlite_where=_LIVE)
Index("ix_resources_scope_status", resources.c.type, resources.c.municipality, resources.c.status,
      resources.c.last_updated, resources.c.id, postgresql_where=_LIVE, sqlite_where=_LIVE)
Index("ix_resources_last_updated", resources.c.last_updated)
Index("ix_resources_patient", resources.c.patient_id, resources.c.type)

# Which municipalities see a shared resource: those with a plan or letter that names it.
resource_access = Table(
    "resource_access", metadata,
    Column("type", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("municipality", String(4), primary_key=True),
)
Index("ix_resource_access_municipality", resource_access.c.municipality, resource_access.c.type)

# Facts about the deployment: the fingerprint of the id key the store was filled with.
deployment = Table(
    "deployment", metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

resource_history = Table(
    "resource_history", metadata,
    Column("type", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("municipality", String(4)),
    Column("message_id", ForeignKey("messages.id")),
    Column("content", JSON, nullable=False),
    Column("changed_by", String(100)),
)
# The sync feed (_history?_since=…): a municipality's versions of a type in time order, and
# every version in time order (operators, system-level history).
Index("ix_history_scope_updated", resource_history.c.type, resource_history.c.municipality,
      resource_history.c.last_updated, resource_history.c.id, resource_history.c.version_id)
Index("ix_history_updated", resource_history.c.last_updated, resource_history.c.type, resource_history.c.id,
      resource_history.c.version_id)

# Who pushed or read what, when (no patient data: ids, codes and outcomes only).
audit = Table(
    "audit", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("client", String(100)),
    Column("role", String(20)),
    Column("action", String(40), nullable=False),  # push | read | search | update | receipt | ...
    Column("target", String(200)),  # e.g. "message/12", "Task/<id>", "Task?owner=..."
    Column("outcome", String(40)),  # accepted | refused | duplicate | 200 | 403 | ...
    Column("detail", Text),
)
Index("ix_audit_at", audit.c.at)
Index("ix_audit_target", audit.c.target, audit.c.action)

# What must be delivered to whom; drained by the routing worker (adapter/routing/worker.py).
# The payload is the message's transaction Bundle (patient data, like resources.content);
# last_error holds codes, HTTP statuses and ids only.
outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", ForeignKey("messages.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("recipient", String(100), nullable=False),  # e.g. "municipality:0461", "gln:579...", "region:1084"
    Column("role", String(20), nullable=False),  # primary | gp | cc | hospital | region
    Column("order_key", String(64), nullable=False),  # per-patient ordering
    Column("state", String(16), nullable=False),  # pending | unroutable | delivered | dead | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("addresses", JSON),  # other routing keys of the same recipient, e.g. ["ydernummer:012345"]
    Column("payload", JSON),  # the transaction Bundle to deliver (PUT entries, deterministic ids)
    Column("mode", String(8)),  # push | pull, once a route was found
    Column("endpoint", String(300)),  # the base URL of the last attempt (never a credential)
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("failing_since", DateTime(timezone=True)),  # first failure of the current round of retries
    UniqueConstraint("message_id", "recipient", name="uq_outbox_message_recipient"),
)
Index("ix_outbox_state_next", outbox.c.state, outbox.c.next_attempt_at)
Index("ix_outbox_order", outbox.c.order_key, outbox.c.recipient, outbox.c.id)
