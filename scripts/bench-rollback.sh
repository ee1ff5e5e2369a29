#!/usr/bin/env bash
# Rollback speed: `ferry copy rollback` of the demo's copy against the copy
# itself, measured in the same run on the same machine. The target (issue
# 13): rolling back a run takes no longer than the run took.
#
#   scripts/bench-rollback.sh [customers] [postgres-url]
#
# customers defaults to 1000000. With a PostgreSQL URL (a server where the
# script may create and drop databases) PostgreSQL is measured too. Release
# build; nothing here is a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start rollback

# Rows a rollback removes or revokes, from its summary line.
removed_rows() {
  python3 -c "import re, sys; print(sum(int(n) for n in re.findall(r'(\d+) (?:requests|accounts|projects|organizations|grants)', sys.argv[1])))" "$1"
}

measure() { # label db-url
  local label=$1 db=$2 t0 t1 t2 copy rollback line rows
  "$ferry" --db "$db" demo --customers "$customers" --seed 1 >/dev/null 2>&1
  sync; t0=$(now)
  /usr/bin/time -f %M -o rss-copy.txt "$ferry" --db "$db" copy run --from demo-src --to demo-dst --report report >/dev/null 2>copy.log
  t1=$(now)
  line=$(/usr/bin/time -f %M -o rss-rollback.txt "$ferry" --db "$db" copy rollback 1)
  t2=$(now)
  copy=$(secs "$t0" "$t1"); rollback=$(secs "$t1" "$t2"); rows=$(removed_rows "$line")
  echo "$label: $line"
  echo "$label: copy ${copy} s (peak RSS $(( $(cat rss-copy.txt) / 1024 )) MB); rollback ${rollback} s ($(div "$rows" "$rollback" 0) rows/s removed, peak RSS $(( $(cat rss-rollback.txt) / 1024 )) MB); rollback/copy $(div "$rollback" "$copy" 2)x"
}

measure "SQLite, $customers customers" "$work/rollback.db"

if [ -n "$pg_url" ]; then
  server=${pg_url%/*}
  name=ferry_bench_rollback_$$
  psql "$pg_url" -qc "DROP DATABASE IF EXISTS $name" -qc "CREATE DATABASE $name"
  trap 'psql "$pg_url" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1; rm -rf "$work"' EXIT
  measure "PostgreSQL, $customers customers" "$server/$name"
fi
