#!/usr/bin/env bash
# Time and peak resident memory (RSS) of every command an admin runs on a
# site of N customers, one after the other on one database, in release
# mode: demo, site export, site import (the export into a new site), copy
# check, copy run, copy report, customer list, copy rollback, the copy
# again, customer upgrade --all-duplicates, and the re-run with nothing new.
# Issue 17 asks for under 2 GB each at 10,000,000 customers and time
# growing linearly from 1,000,000.
#
#   scripts/bench-memory.sh [customers] [postgres-url]
#
# customers defaults to 1000000. With a PostgreSQL URL (a server where the
# script may create and drop databases) the commands run on a fresh
# database there instead of an SQLite file. Nothing here is a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start memory

if [ -n "$pg_url" ]; then
  db=ferry_bench_memory_$$
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $db" >/dev/null
  url="${pg_url%/*}/$db"
  trap 'psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
  backend=PostgreSQL
else
  url=$work/memory.db
  backend=SQLite
fi

echo "$backend, $customers customers: command | seconds | peak RSS MB"
# Runs one command (its output kept in a file, not read); stops the bench
# if it fails.
measure() { # label, then the ferry arguments
  local label=$1; shift
  local t0 t1
  t0=$(now)
  if ! /usr/bin/time -f %M -o rss.txt "$ferry" --db "$url" "$@" > "out.txt" 2> "err.txt"; then
    echo "$label failed:" >&2; cat err.txt >&2; exit 1
  fi
  t1=$(now)
  echo "$label | $(secs "$t0" "$t1") | $(( $(tail -1 rss.txt) / 1024 ))"
}

measure "demo" demo --customers "$customers" --seed 1
measure "site export (source)" site export demo-src snapshot
"$ferry" --db "$url" site create demo imported >/dev/null
measure "site import (into a new site)" site import imported snapshot
rm -rf snapshot
measure "copy check" copy check --from demo-src --to demo-dst --report check
measure "copy run" copy run --from demo-src --to demo-dst --report run
measure "copy report" copy report 1 --out again
rm -rf check run again
measure "customer list (destination)" customer list demo-dst
measure "copy rollback" copy rollback 1
measure "copy run (again)" copy run --from demo-src --to demo-dst --report run
measure "customer upgrade --all-duplicates" customer upgrade demo-dst --all-duplicates
measure "copy run (re-run, nothing new)" copy run --from demo-src --to demo-dst --report run
