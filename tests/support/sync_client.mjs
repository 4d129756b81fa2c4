// A municipal system's sync with fhir-kit-client (Node), following docs/sync.md to the letter:
//
//   1. first load: GET Task?_sort=_lastUpdated&_count=500, `started` = the first Bundle's
//      meta.lastUpdated, follow the `next` links (opaque _cursor), keep id -> versionId;
//   2. one catch-up: GET Task/_history?_since=<started - 5 min>&_count=500, follow `next`,
//      apply an entry only when its versionId is higher than the one held (or the id is new).
//
// Usage (tests/test_sync_clients.py copies this file next to its node_modules and drives it):
//
//   SYNC_TOKEN=<bearer token> node sync_client.mjs <FHIR base>
//
// It prints one JSON object per line on stdout and waits for a line on stdin at two points,
// so that the test can interleave concurrent updates with the walk:
//
//   {"event":"page",...}   after each page of the first load; when the page has a next link,
//                          it waits for "next" before fetching it;
//   {"event":"walked",...} after the last page, with "held": {id: versionId}; it waits for "catch-up";
//   {"event":"done",...}   after the catch-up, with "held": {id: versionId} and the counts.

import { createInterface } from 'node:readline';
import { Client } from 'fhir-kit-client';

const base = process.argv[2];
const token = process.env.SYNC_TOKEN;
if (!base || !token) {
  process.stderr.write('usage: SYNC_TOKEN=<token> node sync_client.mjs <FHIR base>\n');
  process.exit(2);
}

const client = new Client({ baseUrl: base, bearerToken: token });
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function waitFor(word) {
  const { value, done } = await lines.next();
  if (done || value.trim() !== word) {
    throw new Error(`expected "${word}" on stdin, got ${done ? 'end of input' : JSON.stringify(value)}`);
  }
}

function say(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function hasNext(bundle) {
  return (bundle.link ?? []).some((link) => link.relation === 'next');
}

const held = new Map(); // id -> versionId (a number)

function keep(resource) {
  const version = Number(resource.meta.versionId);
  const have = held.get(resource.id);
  if (have === undefined || version > have) {
    held.set(resource.id, version);
    return true;
  }
  return false;
}

// 1. First load
let bundle = await client.search({ resourceType: 'Task', searchParams: { _sort: '_lastUpdated', _count: 500 } });
const started = bundle.meta.lastUpdated;
let pages = 0;
let walkEntries = 0;
for (;;) {
  pages += 1;
  let entries = 0;
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.resourceType === 'Task' && (entry.search?.mode ?? 'match') === 'match') {
      keep(entry.resource);
      entries += 1;
    }
  }
  walkEntries += entries;
  const more = hasNext(bundle);
  say({ event: 'page', page: pages, started, entries, next: more });
  if (!more) break;
  await waitFor('next');
  bundle = await client.nextPage({ bundle });
}
say({ event: 'walked', pages, entries: walkEntries, held: Object.fromEntries(held) });

// 2. One catch-up from the history feed
await waitFor('catch-up');
const since = new Date(Date.parse(started) - 5 * 60 * 1000).toISOString();
const query = new URLSearchParams({ _since: since, _count: '500' });
bundle = await client.request(`Task/_history?${query}`);
let catchUpPages = 0;
let catchUpEntries = 0;
let applied = 0;
while (bundle) {
  catchUpPages += 1;
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.resourceType !== 'Task') continue;
    catchUpEntries += 1;
    if (keep(entry.resource)) applied += 1;
  }
  bundle = await client.nextPage({ bundle });
}
const done = {
  event: 'done', started, since, pages, walkEntries, catchUpPages, catchUpEntries, applied,
  held: Object.fromEntries(held),
};
process.stdout.write(`${JSON.stringify(done)}\n`, () => process.exit(0)); // stdin stays open: exit once written
