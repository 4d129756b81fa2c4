"""The console in a real headless Chromium (Debian's chromium, driven by Playwright), against
the real service under gunicorn: the log after pushing generated messages, a refused
message's located issue, replaying a dead letter made by the real worker, a municipality
tester kept to its own messages, no console errors, and a basic accessibility check (labels,
headings, contrast) on every page visited."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from tests.support.console import DATA, odense_and_aalborg
from tests.support.fhir_endpoints import Reply, StubEndpoint
from tests.support.fhir_world import write_clients
from tests.support.service_process import REPO, start_service, stop_service

from adapter.generate import generate_messages
from adapter.store.engine import make_engine
from adapter.store.schema import messages, outbox

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("ADAPTER_TEST_CHROMIUM", "/usr/bin/chromium")
HOSPITAL = {"Authorization": "Bearer tok-hospital", "Content-Type": "application/xml"}
REFUSED = DATA / "invalid" / "bad-receiver-gln-check-digit.xml"
TIMEOUT_MS = 15_000

# Labels, headings and contrast, checked in the page: what a screen reader and a low-vision
# reader need first. Returns a list of problems (empty when the page passes).
A11Y_CHECK = """
() => {
  const problems = [];
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !visible(el)) continue;
    const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.getAttribute('aria-label')
      || el.closest('label');
    if (!labelled) problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const b of document.querySelectorAll('button')) {
    if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('button without a name');
  }
  const h1 = document.querySelectorAll('h1');
  if (h1.length !== 1) problems.push(`${h1.length} h1 headings`);
  let last = 0;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push(`heading skips from h${last} to h${level}: ${h.textContent.trim()}`);
    last = level;
  }
  if (!document.documentElement.lang) problems.push('no lang on html');
  if (!document.title.trim()) problems.push('no title');
  for (const svg of document.querySelectorAll('svg')) {
    if (!svg.getAttribute('aria-label') && !svg.querySelector('title')) problems.push('chart without a name');
  }
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const checked = new Set();
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') || !visible(el)) continue;
    const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join('');
    if (!text) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3);
    const [l1, l2] = [lum(fg), lum(background(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    const key = `${style.color}|${background(el)}`;
    if (ratio < (large ? 3 : 4.5) && !checked.has(key)) {
      checked.add(key);
      problems.push(`contrast ${ratio.toFixed(2)} for "${text.slice(0, 30)}"`);
    }
  }
  return problems;
}
"""


def _playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-browser")
    url = f"sqlite:///{tmp}/adapter.db"
    env = {"ADAPTER_CONSOLE_SECRET_FILE": str(tmp / "console.key"), "ADAPTER_METRICS_DIR": str(tmp / "metrics")}
    clients = write_clients(tmp / "clients.yaml")
    proc, base = start_service(url, clients, workers=1, env=env)
    try:
        assert requests.post(base + "/medcom", data=REFUSED.read_bytes(), headers=HOSPITAL, timeout=30).status_code == 422
        odense, aalborg = odense_and_aalborg()
        pushed = odense + aalborg + [m.xml for m in generate_messages(10, 31)]
        for raw in pushed:
            assert requests.post(base + "/medcom", data=raw, headers=HOSPITAL, timeout=30).status_code == 200
        # Odense's FHIR server refuses everything: the real worker makes dead letters
        with StubEndpoint([Reply(400, {"resourceType": "OperationOutcome",
                                       "issue": [{"severity": "error", "code": "invalid"}]})] * 50) as stub:
            routes = tmp / "routing.yaml"
            routes.write_text(f'routes:\n  "municipality:0461": {{mode: push, base_url: "{stub.base_url}"}}\n')
            done = subprocess.run([sys.executable, "-m", "adapter", "worker", "--once", "--routes", str(routes)],
                                  cwd=REPO, env={**os.environ, "ADAPTER_DATABASE_URL": url, **env},
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
        yield base, make_engine(url)
    finally:
        stop_service(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Visit:
    """A browser context signed in as one client, collecting console errors and checking
    every page it loads for accessibility problems."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context()
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.expected: set[str] = set()  # pages asked for that answer an error status on purpose
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.a11y: dict[str, list[str]] = {}

    def _console(self, message) -> None:
        if message.type == "error" and (message.location or {}).get("url") not in self.expected:
            self.errors.append(f"{message.text} ({(message.location or {}).get('url')})")

    def check(self) -> None:
        problems = self.page.evaluate(A11Y_CHECK)
        if problems:
            self.a11y[self.page.url] = problems

    def goto(self, path: str, expect_error: bool = False):
        if expect_error:
            self.expected.add(self.base + path)
        resp = self.page.goto(self.base + path)
        self.check()
        return resp

    def sign_in(self, token: str) -> None:
        self.goto("/console/messages")
        assert "/console/login" in self.page.url
        self.page.get_by_label("Token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/console/messages")
        self.check()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, service):
    opened: list[Visit] = []

    def make(token: str) -> Visit:
        v = Visit(browser, service[0])
        v.sign_in(token)
        opened.append(v)
        return v

    yield make
    for v in opened:
        errors, a11y = v.errors, v.a11y
        v.close()
        assert errors == [], errors
        assert a11y == {}, a11y


def _messages(engine, **where):
    with engine.connect() as conn:
        rows = conn.execute(select(messages.c.id, messages.c.letter_id, messages.c.municipality, messages.c.state)
                            .order_by(messages.c.id)).all()
    return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def test_log_after_pushing_generated_messages_and_search_by_letter_id(visit, service):
    _base, engine = service
    v = visit("tok-drift")
    rows = v.page.locator("table.log tbody tr")
    assert rows.count() == min(50, len(_messages(engine)))
    target = _messages(engine, state="accepted")[-3]
    v.page.get_by_label("Letter or envelope id").fill(target.letter_id)
    v.page.get_by_role("button", name="Search").click()
    v.page.wait_for_url("**letter=*")
    v.check()
    assert rows.count() == 1
    v.page.locator("table.log tbody tr a").first.click()
    v.page.wait_for_url(f"**/console/messages/{target.id}")
    v.check()
    assert v.page.get_by_test_id("letter-id").inner_text() == target.letter_id
    assert v.page.get_by_role("heading", name="Where it went").is_visible()
    v.goto("/console/dashboard")
    assert int(v.page.get_by_test_id("plans").inner_text()) >= 1
    v.goto("/console/dashboard?municipality=0461")


def test_open_a_refused_message_and_see_its_located_issue(visit, service):
    v = visit("tok-drift")
    v.page.get_by_label("Result").select_option("refused")
    v.page.get_by_role("button", name="Search").click()
    v.page.wait_for_url("**result=refused*")
    v.check()
    v.page.locator("table.log tbody tr a").first.click()
    v.page.wait_for_url("**/console/messages/*")
    v.check()
    issue = v.page.get_by_test_id("issue").first
    assert "GGOP-E309" in issue.inner_text()
    assert "/Emessage/RehabilitationPlan/Receiver/EANIdentifier" in issue.inner_text()
    issue.get_by_role("link", name="30").click()
    assert v.page.url.endswith("#L30")
    assert "hit" in (v.page.locator("#L30").get_attribute("class") or "")


def test_replay_a_dead_letter(visit, service):
    _base, engine = service
    with engine.connect() as conn:
        dead = conn.execute(select(outbox.c.id).where(outbox.c.state == "dead").order_by(outbox.c.id)).scalars().all()
    assert dead
    v = visit("tok-drift")
    v.goto("/console/outbox?state=dead")
    v.page.get_by_label(f"Choose outbox row {dead[0]}", exact=True).check()
    v.page.get_by_role("button", name="Replay chosen rows").click()
    v.page.wait_for_url("**done=*")
    v.check()
    assert "replayed 1" in v.page.get_by_test_id("done").inner_text()
    assert v.page.locator(f'tr[data-row="{dead[0]}"]').count() == 0  # no longer among the dead
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.state).where(outbox.c.id == dead[0])).scalar() == "pending"


def test_a_municipality_tester_cannot_open_another_municipalitys_message(visit, service):
    _base, engine = service
    v = visit("tok-odense")
    listed = {int(x) for x in v.page.locator("table.log tbody tr td:first-child a").all_inner_texts()}
    own = {r.id for r in _messages(engine, municipality="0461")}
    assert listed and listed <= own
    other = _messages(engine, municipality="0851")[0]
    resp = v.goto(f"/console/messages/{other.id}", expect_error=True)
    assert resp.status == 404
    assert v.page.get_by_test_id("error-code").inner_text() == "GGOP-E703"
    mine = next(iter(sorted(own)))
    assert v.goto(f"/console/messages/{mine}").status == 200


def test_the_accessibility_check_finds_what_it_looks_for(browser):
    """The check itself, on a page with each problem: it must not pass anything."""
    page = browser.new_page()
    try:
        page.set_content('<html><head><title>x</title></head><body><h2>Skipped h1</h2><h4>and h3</h4>'
                         '<input id="q"><p style="color:#bbbbbb">faint text</p><button></button></body></html>')
        problems = " | ".join(page.evaluate(A11Y_CHECK))
    finally:
        page.close()
    for expected in ("no label", "0 h1 headings", "skips from h2 to h4", "contrast", "button without a name",
                     "no lang"):
        assert expected in problems, problems
