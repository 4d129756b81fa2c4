"""Flask app factory: ``/medcom`` (hospital push), ``/fhir`` (municipal pull), health."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, g, jsonify, request

from adapter.api.auth import bearer_challenge, load_clients
from adapter.api.context import EXTENSION, Services
from adapter.api.errors import error_response
from adapter.api.fhir_rest import blueprint as fhir_blueprint
from adapter.api.medcom import blueprint as medcom_blueprint
from adapter.api.oauth import RETRY_AFTER_SECONDS, IssuerUnavailable, load_oauth
from adapter.api.process_message import blueprint as process_message_blueprint
from adapter.api.responses import outcome_response
from adapter.danish_time import utc_now
from adapter.outcome import plain_issue
from adapter.runtime import Runtime, load_runtime
from adapter.store.engine import schema_is_current

log = logging.getLogger("ggop.api")


STORE_FAILURE_HOLD_SECONDS = 60
# paths that need no token: they answer even when the OAuth issuer's keys cannot be fetched
UNAUTHENTICATED_PATHS = ("/healthz", "/readyz", "/fhir/metadata")


def _room_for_messages(services: Services) -> bool:
    """An embedded SQLite store has room for a few more of the largest messages."""
    url = services.settings.database_url
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return True
    folder = Path(url.split("///", 1)[1]).resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    return free > 4 * services.settings.max_bytes


def create_app(runtime: Runtime | None = None, clock: Callable[[], dt.datetime] = utc_now) -> Flask:
    runtime = runtime or load_runtime()
    runtime.engine  # opened (and migrated) before the first request  # noqa: B018
    oauth = load_oauth(runtime.settings)
    clients = load_clients(runtime.settings.clients_file, allow_none=runtime.settings.open_medcom, oauth=oauth)
    services = Services(runtime=runtime, clients=clients, clock=clock)
    app = Flask("ggop-adapter")
    app.url_map.merge_slashes = False  # no HTML redirect for //: the FHIR routes answer in FHIR
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_bytes
    app.extensions[EXTENSION] = services
    app.register_error_handler(Exception, error_response)

    @app.before_request
    def _authenticate() -> Response | None:
        g.client = None
        try:
            g.client = services.clients.authenticate(request.headers.get("Authorization"))
        except IssuerUnavailable:
            if request.path.rstrip("/") not in UNAUTHENTICATED_PATHS:
                return outcome_response([plain_issue(
                    "error", "transient", "The token issuer's keys cannot be fetched now; send again later.")],
                    503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return None

    @app.after_request
    def _challenge(resp: Response) -> Response:
        """Every 401 (/fhir, /medcom) names the bearer scheme, and ``invalid_token`` when a
        token was sent."""
        if resp.status_code == 401:
            resp.headers["WWW-Authenticate"] = bearer_challenge(request.headers.get("Authorization"))
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        """The process is up."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int] | Response:
        """The database answers and its schema is the newest."""
        try:
            with services.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            current = schema_is_current(services.engine)
        except Exception as exc:  # noqa: BLE001 - a database failure of any kind means not ready
            log.warning("readyz: database not ready (%s)", type(exc).__name__)
            return jsonify(status="unavailable", reason="database"), 503
        if not current:
            return jsonify(status="unavailable", reason="schema"), 503
        failed = services.store_failed_at
        if failed is not None and (services.clock() - failed).total_seconds() < STORE_FAILURE_HOLD_SECONDS:
            return jsonify(status="unavailable", reason="store failed a write"), 503
        if not _room_for_messages(services):
            return jsonify(status="unavailable", reason="disk"), 503
        return jsonify(status="ready")

    app.register_blueprint(medcom_blueprint)
    app.register_blueprint(process_message_blueprint)  # before /fhir's catch-all
    app.register_blueprint(fhir_blueprint)
    # operator console, /metrics and JSON request lines (docs/console.md)
    from adapter import logs, metrics
    from adapter.console import register as register_console

    logs.install(app)
    metrics.register_endpoint(app, lambda: services.engine, clock, runtime.settings.metrics_public)
    register_console(app, runtime.settings, clients)
    return app
