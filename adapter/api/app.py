"""Flask app factory: ``/medcom`` (hospital push), ``/fhir`` (municipal pull), health."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.engine import Engine

from adapter.api.auth import Client, Clients, load_clients
from adapter.codes import CodeTables, load_code_tables
from adapter.config import Settings
from adapter.pipeline import default_rules
from adapter.rules.loader import load_rules
from adapter.rules.model import RuleSet
from adapter.store.engine import open_store

log = logging.getLogger("ggop.api")


@dataclass
class Services:
    """What the request handlers share; ``clock`` is the only source of 'now'."""

    settings: Settings
    engine: Engine
    clients: Clients
    tables: CodeTables
    rules: RuleSet
    clock: Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               clock: Callable[[], dt.datetime] = utc_now) -> Flask:
    settings = settings or Settings.load()
    from pathlib import Path

    rules = (load_rules(override_files=[Path(p) for p in settings.rule_overrides])
             if settings.rule_overrides else default_rules())
    services = Services(
        settings=settings,
        engine=engine or open_store(settings.database_url),
        clients=load_clients(settings.clients_file),
        tables=load_code_tables(),
        rules=rules,
        clock=clock,
    )
    app = Flask("ggop-adapter")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_bytes
    app.extensions["ggop"] = services

    @app.before_request
    def _authenticate():
        g.client = services.clients.authenticate(request.headers.get("Authorization"))

    @app.get("/healthz")
    def healthz():
        """The process is up."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        """The database answers and its schema is the newest."""
        from adapter.store.engine import schema_is_current

        try:
            with services.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            current = schema_is_current(services.engine)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            log.warning("readyz: database not ready (%s)", type(exc).__name__)
            return jsonify(status="unavailable", reason="database"), 503
        if not current:
            return jsonify(status="unavailable", reason="schema"), 503
        return jsonify(status="ready")

    @app.errorhandler(Exception)
    def _unexpected(exc):
        """Never a stack trace or patient data in a response or a log line."""
        from werkzeug.exceptions import HTTPException

        from adapter.errors import issue
        from adapter.outcome import operation_outcome

        if isinstance(exc, HTTPException):
            code = exc.code or 500
            body = operation_outcome([issue("GGOP-E903", None, request.path, f"HTTP {code}")])
            body["issue"][0]["code"] = "not-found" if code == 404 else "not-supported" if code == 405 else "processing"
            return Response(json.dumps(body), status=code, mimetype="application/fhir+json")
        log.error("internal error on %s %s: %s", request.method, request.path, type(exc).__name__)
        body = operation_outcome([issue("GGOP-E900", None, request.path, type(exc).__name__)])
        return Response(json.dumps(body), status=500, mimetype="application/fhir+json")

    from adapter.api.fhir import blueprint as fhir_bp
    from adapter.api.medcom import blueprint as medcom_bp

    app.register_blueprint(medcom_bp)
    app.register_blueprint(fhir_bp)
    return app


def services() -> Services:
    from flask import current_app

    return current_app.extensions["ggop"]


def current_client() -> Client | None:
    return g.get("client")
