"""Running the service under gunicorn (a production WSGI server).

The worker class is gunicorn's threaded worker with a deadline on every socket read and
write: a client that sends part of its request line or headers and stalls (slowloris), or
stops reading its answer, holds a thread for ``SOCKET_TIMEOUT`` seconds at most, so a handful
of such clients can no longer take every thread (``/healthz`` keeps answering). The body of
``POST /medcom`` has its own total deadline (``ADAPTER_BODY_TIMEOUT``, adapter/api/medcom.py).
"""

from __future__ import annotations

import gc
import logging

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

SOCKET_TIMEOUT = 10.0
WORKER_CLASS = "adapter.api.server.BoundedThreadWorker"


class _QuietTimeouts(logging.Filter):
    """A client that timed out is expected, not a server error: one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError):
            record.msg, record.args = "client too slow: connection closed", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class BoundedThreadWorker(ThreadWorker):
    def init_process(self):
        self.log.error_log.addFilter(_QuietTimeouts())
        super().init_process()

    def handle(self, conn):
        if not getattr(conn, "_bounded", False):
            init = conn.init

            def bounded_init():
                init()
                conn.sock.settimeout(SOCKET_TIMEOUT)

            conn.init = bounded_init
            conn._bounded = True
        return super().handle(conn)


class AdapterServer(BaseApplication):
    def __init__(self, app_factory, options: dict):
        self._factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):
        app = self._factory()
        # What the worker loaded (code tables, rules, schemas, the app) lives as long as the
        # worker: moved out of the collector's generations, so a full collection under load
        # walks only what requests allocate (the pull API's p99 was full collections).
        gc.collect()
        gc.freeze()
        return app
