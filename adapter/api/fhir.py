"""The FHIR R4 REST API for municipalities under ``/fhir`` (JSON only).

Interactions (see ``adapter/api/capability.py`` for the CapabilityStatement built from the
same tables):

* ``GET /fhir/metadata``: the CapabilityStatement, without authentication;
* ``GET /fhir/<Type>/<id>``: read (ETag ``W/"<versionId>"``, Last-Modified, ``If-None-Match``
  answered 304); ``/_history/<vid>``: vread; ``/_history``: the history Bundle, newest first;
* ``GET /fhir/<Type>?…``: search (``adapter/store/search.py``), a searchset Bundle with
  ``total``, ``_count`` (default 50, at most 500), ``self``/``first``/``next``/``previous``
  links that repeat the search with an ``_offset``, ``_include`` entries marked ``include``,
  and ignored parameters listed in an OperationOutcome entry (``Prefer: handling=strict``
  refuses them with 400);
* ``PUT /fhir/Task/<id>`` with ``If-Match``: update and re-evaluation
  (``adapter/api/task_update.py``).

Access (``adapter/api/access.py``): every interaction but metadata needs a bearer token; a
municipality client sees its own citizens' resources only, and a resource of another
municipality is answered 404 like an unknown id; operators read everything; hospitals get
403. Every request but metadata is written to the audit table.

Every answer is JSON (``application/fhir+json``); errors are OperationOutcomes with their
HTTP status and never echo a parameter value, an id that is not the adapter's, or patient data.
"""

from __future__ import annotations

import json
import logging
import uuid
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from adapter.api import access
from adapter.api.app import current_client, services
from adapter.api.capability import TYPES, UPDATABLE, capability_statement
from adapter.api.task_update import UpdateRejected, update_task
from adapter.store.search import DEFAULT_COUNT, MAX_COUNT, SearchError, history, parse_search, read, search, vread
from adapter.store.task_update_time import utc as _utc  # noqa: F401  (placeholder, replaced below)
