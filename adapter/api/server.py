"""Running the service under gunicorn (a production WSGI server)."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


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
        return self._factory()
