"""Property-based tests of the FHIR API (hypothesis, fixed budget): random GET URLs over the
``/fhir`` endpoints and random ``POST [type]/_search`` form bodies against the Flask app on a
small store of each kind.

The URLs are made of the resource types, real and junk ids, ``_history`` and version ids, the
search parameter names of the CapabilityStatement (with modifiers) and junk names, values that
fit each parameter and junk (``_count``, ``_offset``, ``_sort``, ``_cursor`` tokens real,
truncated and forged, ``_since``/``_lastUpdated`` dates at the edges of the calendar,
``_include``/``_revinclude``, ``_elements``, ``_summary``, ``_format``, tokens, references),
percent-encoded text with control and non-ASCII characters, and raw bytes that are not UTF-8.
The invariant: never a 5xx; always a FHIR JSON body (a Bundle, a resource, the
CapabilityStatement or an OperationOutcome), an OperationOutcome for every 4xx; and every
link of a Bundle the API answers is one the API answers with 200.

Four properties with a fixed budget (``API_PROPERTY_EXAMPLES``, default 200 for the broad GET
property and half of it for each other): any GET URL; any value (any text) of one search
parameter the CapabilityStatement names; any page token (``_cursor``) of a search or of the
history feed; any ``POST [type]/_search``. What they found is kept in :data:`FOUND` as plain
cases. A failure prints the draws and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from tests.support import TEST_ID_KEY
from tests.support.fhir_world import load_store, write_clients
from tests.support.private_postgres import drop_database

from adapter.api.app import create_app
from adapter.api.capability import TYPES, capability_statement
from adapter.api.context import EXTENSION, Services
from adapter.store.engine import make_engine, open_store
from adapter.store.schema import resources
from conftest import runtime_for

pytestmark = pytest.mark.slow

GET_EXAMPLES = int(os.environ.get("API_PROPERTY_EXAMPLES", "200"))
FOCUSED_EXAMPLES = max(GET_EXAMPLES // 2, 1)  # each of the focused properties and the POST one
SETTINGS = settings(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])

FHIR_TYPES = ("Bundle", "OperationOutcome", "CapabilityStatement", *TYPES)
JSON_MIMES = ("application/fhir+json", "application/json")

# --------------------------------------------------------------------------------------------
# What the CapabilityStatement says
# --------------------------------------------------------------------------------------------

_CAPABILITY = capability_statement("http://localhost/fhir", dt.datetime(2026, 3, 3, tzinfo=dt.UTC))
_RESOURCES = {r["type"]: r for r in _CAPABILITY["rest"][0]["resource"]}
PARAM_NAMES = sorted({p["name"] for r in _RESOURCES.values() for p in r.get("searchParam", [])})
INCLUDES = sorted({v for r in _RESOURCES.values() for v in r.get("searchInclude", [])})
REVINCLUDES = sorted({v for r in _RESOURCES.values() for v in r.get("searchRevInclude", [])})
RESULT_NAMES = ["_count", "_offset", "_sort", "_cursor", "_since", "_include", "_revinclude", "_elements",
                "_summary", "_format", "_pretty", "_total", "_contained", "_has", "_text", "_content", "_list",
                "_type", "_query", "_security", "_tag", "_profile", "_source", "_at"]
MODIFIERS = ["", ":identifier", ":missing", ":exact", ":not", ":contains", ":text", ":below", ":above", ":in",
             ":of-type", ":iterate", ":recurse", ":Patient", ":", "::", ":identifier:exact"]
SORTS = ["_lastUpdated", "-_lastUpdated", "_id", "-_id"]

# --------------------------------------------------------------------------------------------
# Text and encodings
# --------------------------------------------------------------------------------------------

NASTY = ["", " ", "+", "%", "%%", "%zz", "&", "=", "==", ",", "\\,", "\\", "|", "||", "/", "//", "..", ".", "*",
         "\x00", "\n", "\r\n", "\t", "\u202e", "ÆØÅ", "æøå", "😀", "𝔘", "\ufeff", "null", "true", "-1", "0",
         "1e309", "NaN", "9" * 40, "x" * 300, "[]", "{}", "'", '"', "<x/>", "Task", "Patient/", "/_history/1"]
INSERTS = ["\x00", "\x00", "\x00", "\x00", "\n", "\x7f", "é", "😀", "%", ",", "|", "/", "\\", " ", "+", ":",
           "\ud7ff"]

text_junk = st.one_of(st.sampled_from(NASTY), st.text(max_size=20),
                      st.text(alphabet=st.characters(codec="utf-8"), max_size=12))


@st.composite
def spoiled(draw, strategy: st.SearchStrategy[str]) -> str:
    """A value of ``strategy``, or the same with one odd character put somewhere in it."""
    value = draw(strategy)
    if draw(st.integers(0, 3)) > 0:
        return value
    at = draw(st.integers(0, len(value)))
    return value[:at] + draw(st.sampled_from(INSERTS)) + value[at:]


def _encode(value: str) -> st.SearchStrategy[str]:
    """``value`` percent-encoded as UTF-8 (mostly), or raw with only &, # and ? escaped."""
    raw = value.encode("utf-8", "surrogatepass")
    return st.sampled_from([quote(raw, safe=""), quote(raw, safe="/:|,+"),
                            quote(raw, safe="/:|,+*$!'()@;= ")])


def encoded(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``strategy``'s text percent-encoded (mostly), or bytes that are not UTF-8."""
    bad_bytes = st.binary(min_size=1, max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b))
    return st.one_of(*[strategy.flatmap(_encode)] * 7, bad_bytes)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

OFFSETS = [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-1)),
           dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=14))]
# instants across the whole calendar, and often at its edges
EDGES = [dt.datetime(1, 1, 1, tzinfo=z) for z in OFFSETS] + [dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=z)
                                                              for z in OFFSETS]
instants = st.one_of(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59),
                                  timezones=st.sampled_from(OFFSETS)), st.sampled_from(EDGES))
FHIR_IDS = st.from_regex(r"\A[A-Za-z0-9\-.]{1,64}\Z")
PREFIXES = ["", "", "", "eq", "ne", "gt", "ge", "lt", "le", "sa", "eb"]


@st.composite
def fhir_instants(draw) -> str:
    """A FHIR dateTime of any precision (year to microseconds), with Z or an offset, or none."""
    at = draw(instants)
    precision = draw(st.sampled_from(["year", "month", "day", "minutes", "seconds", "milliseconds",
                                      "microseconds", "microseconds"]))
    if precision == "year":
        return f"{at.year:04d}"
    if precision == "month":
        return f"{at.year:04d}-{at.month:02d}"
    if precision == "day":
        return at.date().isoformat()
    text = at.isoformat(timespec=precision)
    return draw(st.sampled_from([text, text[:-6], text[:-6] + "Z"])) if at.utcoffset() == dt.timedelta(0) \
        else draw(st.sampled_from([text, text[:-6]]))


@st.composite
def odd_dates(draw) -> str:
    """Dates a server must refuse (or read) without tripping: bad fields, years 0 and 10000,
    odd zones, prefixes it does not know."""
    if draw(st.booleans()):
        return draw(st.sampled_from(["", "now", "today", "2026-13", "2026-02-30", "2026-03-03T25:00Z",
                                     "2026-03-03T08:00:00.1234567890Z", "2026-03-03 08:00", "1e9", "0000",
                                     "10000-01-01", "2026-03-03T08:00:00+99:99", "2026-03-03T08:00:00+01:00\n",
                                     "ap2026", "xx2026", "gege2026", "2026-03-03T08:00+1", "2026-3-3"]))
    year = draw(st.integers(0, 9999))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute = draw(st.integers(0, 25)), draw(st.integers(0, 61))
    zone = draw(st.sampled_from(["", "Z", "+14:00", "-14:00", "+15:00", "z", " 01:00"]))
    return draw(st.sampled_from(PREFIXES)) + f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}{zone}"


def dates() -> st.SearchStrategy[str]:
    valid = st.tuples(st.sampled_from(PREFIXES), fhir_instants()).map("".join)
    return st.one_of(valid, valid, odd_dates())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@st.composite
def cursors(draw, ids: list[str], real: list[str], prefer: str | None = None) -> str:
    """Real cursor tokens, cut or changed; forged tokens of the search and the history shape
    (any time of the calendar, any id; mostly of the ``prefer`` shape when given); tokens of other
    shapes; bytes; text."""
    kind = draw(st.sampled_from(["real", "cut", "search", "search", "history", "history", "shape", "bytes", "text",
                                 *([prefer] * 6 if prefer else [])]))
    if kind == "real":
        return draw(st.sampled_from(real))
    if kind == "cut":
        token = draw(st.sampled_from(real))
        cut = draw(st.integers(0, len(token)))
        return token[:cut] + draw(st.sampled_from(["", "=", "==", "A", "!", "%00", "é"]))
    stamp = draw(st.one_of(*[instants.map(dt.datetime.isoformat)] * 4,
                           st.sampled_from(["", "2026-03-03T08:00:00", "2026-03-03"]), odd_dates()))
    rid = draw(st.one_of(st.sampled_from(ids), FHIR_IDS, spoiled(st.sampled_from(ids))))
    if kind == "search":
        sort = draw(st.sampled_from(["_lastUpdated", "_lastUpdated", "_lastUpdated", *SORTS, "x"]))
        return _b64(json.dumps([sort, stamp, rid]).encode())
    if kind == "history":
        rtype = draw(st.sampled_from([*TYPES, "Task", "Task", "task"]))
        version = draw(st.sampled_from(["1", "2", "0", "999999999", "1000000000", "-1", "1\n", "01"]))
        return _b64(json.dumps(["_history", stamp, f"{rtype}/{rid}/{version}"]).encode())
    if kind == "shape":
        item = draw(st.sampled_from([["_lastUpdated", stamp], ["_lastUpdated", stamp, rid, rid], {"a": 1},
                                     ["_lastUpdated", 5, rid], ["_lastUpdated", stamp, 7], ["_history", stamp, 7],
                                     ["_history", None, "Task/x/1"], "abc", None, 3, [[[]]], [stamp, stamp, stamp]]))
        return _b64(json.dumps(item).encode())
    if kind == "bytes":
        return _b64(draw(st.binary(max_size=40)))
    return draw(text_junk)


CODES = ["requested", "accepted", "cancelled", "offer-start", "inform-citizen", "0461", "0851", "x"]
SYSTEMS = ["", "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes",
           "http://ggop-adapter.dk/fhir/CodeSystem/task-codes", "urn:oid:1.2.208.176.1.2", "x"]


def tokens() -> st.SearchStrategy[str]:
    one = st.one_of(st.sampled_from(CODES), st.tuples(st.sampled_from(SYSTEMS), st.sampled_from(CODES)).map("|".join),
                    st.sampled_from(SYSTEMS).map(lambda s: s + "|"))
    return st.lists(one, min_size=1, max_size=3).map(",".join)


def references(ids: list[str]) -> st.SearchStrategy[str]:
    rid = st.sampled_from(ids)
    rtype = st.sampled_from([*TYPES, "Patient", "Patient", "Patient"])
    one = st.one_of(rid, st.tuples(rtype, rid).map("/".join),
                    st.tuples(rtype, rid).map(lambda t: f"http://localhost/fhir/{t[0]}/{t[1]}"),
                    st.tuples(rtype, rid).map(lambda t: f"{t[0]}/{t[1]}/_history/1"))
    return st.lists(one, min_size=1, max_size=3).map(",".join)


def valid_values(base: str, ids: list[str], real_cursors: list[str]) -> st.SearchStrategy[str] | None:
    """Values a client could send for ``base``; None for a name the API does not know."""
    return {
        "_count": st.integers(0, 600).map(str), "_offset": st.integers(0, 60).map(str),
        "_sort": st.sampled_from(SORTS),
        "_cursor": cursors(ids, real_cursors),
        "_since": dates(), "_lastUpdated": dates(),
        "_include": st.sampled_from(INCLUDES), "_revinclude": st.sampled_from(REVINCLUDES),
        "_elements": st.lists(st.sampled_from(["status", "id", "meta", "code", "for", "focus", "note", "subject",
                                               "identifier"]), min_size=1, max_size=4).map(",".join),
        "_summary": st.sampled_from(["count", "false"]),
        "_format": st.sampled_from(["json", "application/fhir+json", "application/fhir json", "application/json"]),
        "_pretty": st.sampled_from(["true", "false"]),
        "_id": st.lists(st.sampled_from(ids), min_size=1, max_size=3).map(",".join),
        "status": tokens(), "code": tokens(), "business-status": tokens(), "identifier": tokens(),
        "owner": st.one_of(tokens(), references(ids)),
        "patient": references(ids), "subject": references(ids), "focus": references(ids),
    }.get(base)


def odd_values(base: str) -> st.SearchStrategy[str]:
    """What a client should not send for ``base``: junk of its kind, and any text."""
    kind = {
        "_count": st.one_of(st.integers(-5, 10**13).map(str),
                            st.sampled_from([" 5", "5 ", "+5", "5.0", "0x10", "١", "²", "1" * 20, "501"])),
        "_sort": st.sampled_from(["status", "-", "_lastUpdated,_id", "_LASTUPDATED", "+_id"]),
        "_include": st.sampled_from(["*", "Task:*", "Task:focus:ServiceRequest", "Task:", ":focus", "Patient:link",
                                     "Task:patient:Patient", "ServiceRequest:patient"]),
        "_revinclude": st.sampled_from(["*", "Task:focus:ServiceRequest", "Task", "Task:*"]),
        "_summary": st.sampled_from(["true", "text", "data", "COUNT"]),
        "_format": st.sampled_from(["xml", "application/fhir+xml", "html", "json;x"]),
        "_since": odd_dates(), "_lastUpdated": odd_dates(),
    }.get(base, text_junk)
    kind = kind if base != "_offset" else odd_values("_count")
    return st.one_of(kind, text_junk)


def values_for(name: str, ids: list[str], real_cursors: list[str]) -> st.SearchStrategy[str]:
    """Mostly a valid value, sometimes with one odd character in it; or junk."""
    base = name.partition(":")[0]
    valid = valid_values(base, ids, real_cursors)
    if valid is None:
        return text_junk
    return st.one_of(valid, valid, valid, spoiled(valid), odd_values(base))


def names_for(rtype: str | None) -> st.SearchStrategy[str]:
    """Parameter names: the type's own (CapabilityStatement), the result and feed parameters,
    any type's, junk; with a modifier now and then."""
    own = sorted(p["name"] for p in _RESOURCES.get(rtype or "", {}).get("searchParam", [])) or ["_id"]
    feed = ["_since", "_count", "_cursor", "_format", "_pretty"]
    name = st.one_of(st.sampled_from(own), st.sampled_from(own),
                     st.sampled_from(feed if rtype is None else ["_count", "_sort", "_include", "_revinclude",
                                                                 "_elements", "_summary"]),
                     st.sampled_from(RESULT_NAMES), st.sampled_from(PARAM_NAMES), text_junk)
    return st.tuples(name, st.sampled_from(MODIFIERS[:1] * 12 + MODIFIERS)).map("".join)


@st.composite
def query_pairs(draw, rtype: str | None, ids: list[str], real_cursors: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(names_for(rtype))
        pairs.append((name, draw(values_for(name, ids, real_cursors))))
    return pairs


@st.composite
def query_string(draw, rtype: str | None, ids: list[str], real_cursors: list[str]) -> str:
    parts = []
    for name, value in draw(query_pairs(rtype, ids, real_cursors)):
        parts.append(draw(encoded(st.just(name))) + draw(st.sampled_from(["="] * 8 + ["", "=="]))
                     + draw(encoded(st.just(value))))
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.sampled_from(["", "&", "=", "==x", "%", "%G0", ";", "a;b=c"])))
    return "&".join(parts)


TYPE_JUNK = ["task", "Foo", "Resource", "metadata", "_history", "_search", "Task ", "%54ask", "Bundle",
             "OperationOutcome"]


@st.composite
def get_urls(draw, ids: list[str], real_cursors: list[str]) -> str:
    """A GET of each interaction: search (most), the history feed, read, vread, instance
    history, metadata, and paths that are none of them."""
    rtype = draw(st.sampled_from(TYPES))
    rid = draw(st.one_of(st.sampled_from(ids), encoded(spoiled(st.sampled_from(ids))), encoded(text_junk)))
    vid = draw(st.one_of(st.integers(-2, 10**12).map(str), encoded(text_junk)))
    kind = draw(st.sampled_from(["search"] * 5 + ["feed"] * 2 + ["read", "vread", "history", "metadata", "junk"]))
    query_type: str | None = rtype
    if kind == "search":
        path = rtype
    elif kind == "feed":
        path, query_type = draw(st.sampled_from([f"{rtype}/_history", "_history"])), None
    elif kind == "read":
        path = f"{rtype}/{rid}"
    elif kind == "vread":
        path = f"{rtype}/{rid}/_history/{vid}"
    elif kind == "history":
        path = f"{rtype}/{rid}/_history"
    elif kind == "metadata":
        path = "metadata"
    else:
        junk_type = draw(st.one_of(st.sampled_from(TYPE_JUNK), encoded(text_junk)))
        path = draw(st.sampled_from(["", "{t}", "{j}", "{j}/{i}", "{t}/", "{t}/{i}/", "{t}/{i}/_history/{v}/x",
                                     "{t}/{i}/{i}", "{t}/_search", "{t}/{i}/_history/", "{t}/{i}/$everything",
                                     "{t}/$meta", "_search", "{j}/_history", "metadata/x", "_history/{i}"]))
        path = path.format(t=rtype, j=junk_type, i=rid, v=vid)
    query = draw(query_string(query_type, ids, real_cursors))
    if kind in ("search", "feed") and draw(st.booleans()):  # a page of a walk: the cursor, forged or not
        shape = "search" if kind == "search" else "history"
        query += ("&" if query else "") + "_cursor=" + draw(cursors(ids, real_cursors, shape).flatmap(_encode))
    return f"/fhir/{path}" + (f"?{query}" if query else "")


AUTH = {"odense": "Bearer tok-odense", "aalborg": "Bearer tok-aalborg", "operator": "Bearer tok-drift",
        "hospital": "Bearer tok-hospital", "junk": "Bearer not-a-token", "basic": "Basic dG9rOnRvaw==",
        "empty": "Bearer ", "jwt": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "none": None}


@st.composite
def headers(draw) -> dict[str, str]:
    out = {}
    auth = AUTH[draw(st.sampled_from(["odense"] * 6 + ["operator"] * 3 + ["aalborg", "hospital", "junk", "basic",
                                                                         "empty", "jwt", "none"]))]
    if auth is not None:
        out["Authorization"] = auth
    accept = draw(st.sampled_from([None, None, "application/fhir+json", "application/json", "*/*",
                                   "application/fhir+json; fhirVersion=4.0", "application/fhir+xml",
                                   "text/html;q=0.9, */*;q=0.1", "application/json;q=0", "x;q=abc", ",", ""]))
    if accept is not None:
        out["Accept"] = accept
    prefer = draw(st.sampled_from([None, None, "handling=strict", "handling=lenient", "return=minimal",
                                   "handling = strict; return=OperationOutcome"]))
    if prefer is not None:
        out["Prefer"] = prefer
    return out


# --------------------------------------------------------------------------------------------
# The app on a small store of each kind
# --------------------------------------------------------------------------------------------


class Api:
    def __init__(self, app, ids: list[str], real_cursors: list[str]):
        self.app = app
        self.http = app.test_client()
        self.ids = ids
        self.cursors = real_cursors


def _next_link(body: dict) -> str | None:
    return next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), None)


def _admin(url: str):
    return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    """The app (``create_app(runtime_for(engine, …))``) over the golden and generated plans of
    two municipalities (tests/support/fhir_world.py). PostgreSQL: a database of its own on the
    server of ADAPTER_TEST_POSTGRES_URL (skipped without it)."""
    folder = tmp_path_factory.mktemp("api-properties")
    admin = name = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder}/adapter.db"
    else:
        server = os.environ.get("ADAPTER_TEST_POSTGRES_URL")
        if not server:
            pytest.skip("no PostgreSQL: set ADAPTER_TEST_POSTGRES_URL (make test starts a local server)")
        name = f"api_properties_{os.getpid()}"
        admin = _admin(server)
        drop_database(admin, name)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = open_store(url, id_key=TEST_ID_KEY.encode())
    try:
        load_store(engine)
        with engine.connect() as conn:
            ids = sorted({row.id for row in conn.execute(select(resources.c.id))})
        app = create_app(runtime_for(engine, database_url=url,
                                     clients_file=str(write_clients(folder / "clients.yaml"))))
        http = app.test_client()
        real = []
        for path in ("/fhir/Task?_count=2", "/fhir/Task?_count=1&_sort=-_id", "/fhir/Task/_history?_count=3",
                     "/fhir/_history?_count=1", "/fhir/Patient?_count=1&_sort=_id"):
            r = http.get(path, headers={"Authorization": "Bearer tok-drift"})
            assert r.status_code == 200, (path, r.json)
            link = _next_link(json.loads(r.get_data()))
            assert link is not None, path
            real.append(dict(p.split("=", 1) for p in urlsplit(link).query.split("&"))["_cursor"])
        yield Api(app, ids, real)
    finally:
        engine.dispose()
        if admin is not None:
            drop_database(admin, name)
            admin.dispose()


def _check(resp, what: str) -> dict | None:
    """The invariant: below 500, FHIR JSON, an OperationOutcome for each error. The one
    exception: Werkzeug's redirect of an empty path segment (``/fhir//x`` or ``/fhir/%2F/x`` →
    ``/fhir/x``, 308, with its own small HTML body), which stays on the FHIR base."""
    assert resp.status_code < 500, f"{what} answered {resp.status_code}: {resp.get_data(as_text=True)[:500]}"
    if resp.status_code == 308:
        target = urlsplit(resp.headers["Location"]).path
        assert target.startswith("/fhir/") and "//" not in target, (what, resp.headers["Location"])
        return None
    assert resp.mimetype in JSON_MIMES, f"{what} answered {resp.status_code} as {resp.mimetype}"
    body = json.loads(resp.get_data())
    assert isinstance(body, dict) and body.get("resourceType") in FHIR_TYPES, (what, resp.status_code, body)
    if resp.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome", (what, resp.status_code, body["resourceType"])
        assert body.get("issue"), (what, body)
    return body


def _follow_links(api: Api, body: dict | None, request_headers: dict[str, str], what: str) -> None:
    """Every link of a Bundle is answered 200 with a Bundle (the same client and headers)."""
    if body is None or body.get("resourceType") != "Bundle":
        return
    for link in body.get("link", []):
        url = urlsplit(link["url"])
        assert url.path.startswith("/fhir"), (what, link)
        target = url.path + (f"?{url.query}" if url.query else "")
        resp = api.http.get(target, headers=request_headers)
        followed = _check(resp, f"{link['relation']} link {target} of {what}")
        assert resp.status_code == 200 and followed is not None and followed["resourceType"] == "Bundle", (
            f"{link['relation']} link {target} of {what}", resp.status_code, followed)


# --------------------------------------------------------------------------------------------
# The properties
# --------------------------------------------------------------------------------------------


def _get_checked(api, url: str, request_headers: dict) -> None:
    """GET ``url``: FHIR JSON, never a 5xx, and every link of a returned Bundle answers too."""
    resp = api.http.get(url, headers=request_headers)
    body = _check(resp, f"GET {url}")
    if resp.status_code == 200:
        _follow_links(api, body, request_headers, f"GET {url}")


@settings(max_examples=GET_EXAMPLES, parent=SETTINGS)
@given(data=st.data())
def test_any_get_url_answers_fhir_json_and_never_5xx(api, data):
    url = data.draw(get_urls(api.ids, api.cursors), label="url")
    request_headers = data.draw(headers(), label="headers")
    _get_checked(api, url, request_headers)


@settings(max_examples=FOCUSED_EXAMPLES, parent=SETTINGS)
@given(data=st.data())
def test_any_value_of_a_search_parameter_answers_fhir_json_and_never_5xx(api, data):
    """One parameter the CapabilityStatement names (or a result parameter) with any text as
    its value, alone or beside a valid one."""
    rtype = data.draw(st.sampled_from(TYPES), label="type")
    own = [p["name"] for p in _RESOURCES[rtype].get("searchParam", [])]
    name = data.draw(st.sampled_from(own + RESULT_NAMES), label="name")
    valid = valid_values(name, api.ids, api.cursors)
    value = data.draw(st.one_of(st.text(max_size=30), st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
                                *([spoiled(valid)] * 2 if valid is not None else [])), label="value")
    query = f"{quote(name)}={quote(value.encode('utf-8'), safe='')}"
    other = data.draw(st.sampled_from(["", "_count=2", "_sort=-_lastUpdated", "_summary=count"]), label="other")
    url = f"/fhir/{rtype}?" + "&".join(q for q in (other, query) if q)
    request_headers = {"Authorization": data.draw(st.sampled_from([AUTH["odense"], AUTH["operator"]]))}
    _get_checked(api, url, request_headers)


@settings(max_examples=FOCUSED_EXAMPLES, parent=SETTINGS)
@given(data=st.data())
def test_any_page_token_answers_fhir_json_and_never_5xx(api, data):
    """A page of a search or of the history feed with any ``_cursor``: the API's own, cut,
    or forged with any time of the calendar and any id."""
    path = data.draw(st.sampled_from([*TYPES, "Task", "Task", *[f"{t}/_history" for t in TYPES], "Task/_history",
                                      "_history", "_history"]), label="path")
    token = data.draw(cursors(api.ids, api.cursors, "history" if "_history" in path else "search"), label="cursor")
    other = data.draw(st.sampled_from(["", "", "_count=1", "_sort=-_lastUpdated", "_sort=_id",
                                       "_since=2026-01-01T00:00:00Z", "_count=0"]), label="other")
    url = f"/fhir/{path}?" + "&".join(q for q in (other, f"_cursor={quote(token, safe='')}") if q)
    request_headers = {"Authorization": data.draw(st.sampled_from([AUTH["odense"], AUTH["operator"]]))}
    _get_checked(api, url, request_headers)


def _token(item) -> str:
    return _b64(json.dumps(item).encode())


def services(app) -> Services:
    return app.extensions[EXTENSION]


# What the properties found, kept as plain cases under the same invariant (and /readyz stays ready).
FOUND = [
    # a forged page token at the calendar's edge: its time cannot be written back in UTC for the
    # Bundle's self link (OverflowError: 500)
    pytest.param("/fhir/Task?_cursor=" + _token(["_lastUpdated", "0001-01-01T00:00:00+01:00", "x"]),
                 id="search-cursor-year-1"),
    pytest.param("/fhir/Task?_sort=-_lastUpdated&_cursor=" + _token(["-_lastUpdated", "9999-12-31T23:59:59-01:00",
                                                                     "x"]), id="search-cursor-year-9999"),
    pytest.param("/fhir/Task/_history?_cursor=" + _token(["_history", "0001-01-01T00:00:00+01:00", "Task/x/1"]),
                 id="type-history-cursor-year-1"),
    pytest.param("/fhir/_history?_cursor=" + _token(["_history", "9999-12-31T23:59:59-01:00", "Task/x/1"]),
                 id="system-history-cursor-year-9999"),
    # a NUL in a Patient reference reaches PostgreSQL as a bound string (DataError: 503, and
    # /readyz answers 503 "store failed a write" for a minute)
    pytest.param("/fhir/Task?patient=%00", id="task-patient-nul"),
    pytest.param("/fhir/ServiceRequest?patient=Patient/a%00", id="servicerequest-patient-nul"),
    pytest.param("/fhir/CarePlan?subject=Patient/%00", id="careplan-subject-nul"),
]


@pytest.mark.parametrize("url", FOUND)
def test_urls_the_properties_found(api, url):
    services(api.app).store_failed_at = None  # each case on a ready app
    body = _check(api.http.get(url, headers={"Authorization": AUTH["odense"]}), f"GET {url}")
    assert body is not None
    ready = api.http.get("/readyz")
    assert ready.status_code == 200, (url, ready.json)


FORM = "application/x-www-form-urlencoded"


@settings(max_examples=FOCUSED_EXAMPLES, parent=SETTINGS)
@given(data=st.data())
def test_any_post_search_answers_fhir_json_and_never_5xx(api, data):
    rtype = data.draw(st.one_of(st.sampled_from(TYPES), st.sampled_from(TYPES), st.sampled_from(TYPE_JUNK)),
                      label="type")
    query = data.draw(st.one_of(st.just(""), query_string(rtype, api.ids, api.cursors)), label="query")
    body = data.draw(st.one_of(query_string(rtype, api.ids, api.cursors), query_string(rtype, api.ids, api.cursors),
                               st.binary(max_size=60).map(lambda b: b.decode("latin-1"))), label="body")
    content_type = data.draw(st.sampled_from([FORM, FORM, FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1",
                                              "application/fhir+json", "multipart/form-data", "text/plain", None]),
                             label="content type")
    request_headers = data.draw(headers(), label="headers")
    if content_type is not None:
        request_headers["Content-Type"] = content_type
    url = f"/fhir/{rtype}/_search" + (f"?{query}" if query else "")
    resp = api.http.post(url, data=body.encode("latin-1"), headers=request_headers)
    found = _check(resp, f"POST {url} ({content_type}): {body[:200]!r}")
    if resp.status_code == 200:
        get_headers = {k: v for k, v in request_headers.items() if k != "Content-Type"}
        _follow_links(api, found, get_headers, f"POST {url}")
