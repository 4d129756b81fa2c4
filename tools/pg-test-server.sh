#!/usr/bin/env bash
# Makes sure a local PostgreSQL server runs for the test suite and prints its URL.
# Uses Debian's packaged cluster (installing postgresql when missing and allowed); prints
# nothing and exits 0 when no server can be had, so the PostgreSQL tests skip with a reason.
set -uo pipefail
DB=adapter_test
ROLE=adapter
PASS=adapter
PORT="${ADAPTER_TEST_PG_PORT:-5432}"

have_root() { [ "$(id -u)" = "0" ]; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  if have_root && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || exit 0
  else
    exit 0
  fi
fi

cluster=$(pg_lsclusters -h 2>/dev/null | head -1)
[ -n "$cluster" ] || { have_root && pg_createcluster 15 main >/dev/null 2>&1; cluster=$(pg_lsclusters -h | head -1); }
[ -n "$cluster" ] || exit 0
version=$(echo "$cluster" | awk '{print $1}')
name=$(echo "$cluster" | awk '{print $2}')
PORT=$(echo "$cluster" | awk '{print $3}')
status=$(echo "$cluster" | awk '{print $4}')
if [ "$status" != "online" ]; then
  have_root || exit 0
  pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 || exit 0
fi
as_postgres() { if have_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
for _ in $(seq 1 30); do as_postgres psql -p "$PORT" -Atqc "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
as_postgres psql -p "$PORT" -Atqc "select 1 from pg_roles where rolname='$ROLE'" | grep -q 1 \
  || as_postgres psql -p "$PORT" -qc "create role $ROLE login password '$PASS' createdb" >/dev/null 2>&1 || exit 0
as_postgres psql -p "$PORT" -Atqc "select 1 from pg_database where datname='$DB'" | grep -q 1 \
  || as_postgres psql -p "$PORT" -qc "create database $DB owner $ROLE" >/dev/null 2>&1 || exit 0
echo "postgresql://$ROLE:$PASS@127.0.0.1:$PORT/$DB"
