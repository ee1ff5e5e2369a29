#!/usr/bin/env bash
# Re-run cost (issue 17): a re-run must cost what changed, not the size of
# the site. On the demo: the first copy, then
#   - a re-run with nothing new (target under 2 s at 1,000,000 customers on
#     SQLite);
#   - a re-run after adding NEW customers (default 10,000), each on SUP's
#     customer list with two new requests (target under 10% of the first
#     copy's time). The import of the additions is timed apart, not counted.
#
#   scripts/bench-rerun.sh [customers] [postgres-url]
#
# customers defaults to 1000000. With a PostgreSQL URL (a server where the
# script may create and drop a database) PostgreSQL is measured too. RUNS
# (default 3) no-op re-runs, median reported. Release build; nothing here is
# a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
runs=${RUNS:-3}
new=${NEW:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start rerun

# additions <dir> <first SUP number>: NEW portal-only customers on SUP's
# customer list, each with two requests.
additions() {
  python3 - "$1" "$2" "$new" <<'PY'
import csv, os, sys
out, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
def w(name, header, rows):
    with open(os.path.join(out, name), "w", newline="", encoding="utf-8") as f:
        c = csv.writer(f); c.writerow(header); c.writerows(rows)
w("accounts.csv", ["account_id", "account_type", "email", "display_name", "active", "email_verified"],
  ([f"po-later-{i}", "customer", f"later.{i}@delta.example", f"Later {i}", "true", "true"] for i in range(n)))
w("customers.csv", ["project_key", "account_id"], (["SUP", f"po-later-{i}"] for i in range(n)))
w("requests.csv", ["request_key", "project_key", "summary", "status", "created", "reporter_id", "participant_ids", "organization"],
  ([f"SUP-{first + 2 * i + r}", "SUP", "Later", "Open", "2026-06-01T09:00:00Z", f"po-later-{i}", "", ""]
   for i in range(n) for r in range(2)))
PY
}

# measure <label> <db url>: first copy, no-op re-runs, additions, delta.
measure() {
  local label=$1 db=$2 t0 t1 first noop delta imported times next
  "$ferry" --db "$db" demo --customers "$customers" --seed 1 >/dev/null 2>&1
  sync; t0=$(now); "$ferry" --db "$db" copy run --from demo-src --to demo-dst --report r1 >/dev/null 2>&1; t1=$(now)
  first=$(secs "$t0" "$t1")
  times=()
  for _ in $(seq "$runs"); do
    sync; t0=$(now)
    /usr/bin/time -f %M -o rss.txt "$ferry" --db "$db" copy run --from demo-src --to demo-dst --report rn >/dev/null 2>&1
    t1=$(now)
    times+=("$(secs "$t0" "$t1")")
  done
  noop=$(median "${times[@]}"); noop_rss=$(( $(cat rss.txt) / 1024 ))
  next=$(( $("$ferry" --db "$db" site export demo-src exported >/dev/null && python3 -c '
import csv, sys
print(max(int(r["request_key"].split("-")[1]) for r in csv.DictReader(open("exported/requests.csv", encoding="utf-8")) if r["project_key"] == "SUP"))') + 1 ))
  rm -rf exported
  additions later "$next"
  sync; t0=$(now); "$ferry" --db "$db" site import demo-src later >/dev/null 2>&1; t1=$(now)
  imported=$(secs "$t0" "$t1")
  sync; t0=$(now)
  /usr/bin/time -f %M -o rss.txt "$ferry" --db "$db" copy run --from demo-src --to demo-dst --report rd >/dev/null 2>&1
  t1=$(now)
  delta=$(secs "$t0" "$t1"); delta_rss=$(( $(cat rss.txt) / 1024 ))
  rm -rf later r1 rn rd
  echo "$label: first copy ${first} s; re-run, nothing new: ${noop} s (median of $runs, peak RSS ${noop_rss} MB, target under 2 s on SQLite)"
  echo "$label: +$new customers, +$((2 * new)) requests (their import ${imported} s, not counted): re-run ${delta} s = $(python3 -c "print(f'{100 * $delta / $first:.1f}')")% of the first copy (peak RSS ${delta_rss} MB, target under 10%)"
}

echo "demo: $customers source customers"
measure "SQLite" rerun.db
rm -f rerun.db*
if [ -n "$pg_url" ]; then
  dbname=ferry_bench_rerun_$$
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $dbname" >/dev/null
  measure "PostgreSQL" "${pg_url%/*}/$dbname"
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "DROP DATABASE $dbname" >/dev/null
fi
