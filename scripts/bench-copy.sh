#!/usr/bin/env bash
# Copy speed: `ferry copy run` of the demo against the database's own bulk
# load of exactly the rows the copy added to the destination, measured in the
# same run on the same machine.
#
#   scripts/bench-copy.sh [customers] [postgres-url]
#
# customers defaults to 1000000. With a PostgreSQL URL (a server where the
# script may create and drop a database) PostgreSQL is measured too, against
# COPY (psql \copy) of the same rows. RUNS (default 3) baseline loads, median
# reported. Release build; nothing here is a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
runs=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start copy


# The rows a run added to the destination, one query per table (run 1).
queries() {
  cat <<'SQL'
accounts|SELECT a.id, a.kind, a.site_id, a.ext_id, a.email, a.email_key, a.display_name, a.active, a.email_verified FROM accounts a JOIN copy_customers cc ON cc.destination_account_id = a.id WHERE cc.run_id = 1 AND cc.new_account_ext_id IS NOT NULL
site_users|SELECT a, b FROM copy_grants WHERE run_id = 1 AND kind = 'site_user'
project_customers|SELECT a, b FROM copy_grants WHERE run_id = 1 AND kind = 'customer'
organization_members|SELECT a, b FROM copy_grants WHERE run_id = 1 AND kind = 'organization_member'
organization_projects|SELECT a, b FROM copy_grants WHERE run_id = 1 AND kind = 'organization_project'
projects|SELECT p.id, p.site_id, p.key, p.name FROM projects p JOIN copy_projects cp ON cp.destination_project_id = p.id WHERE cp.run_id = 1 AND cp.created
organizations|SELECT o.id, o.site_id, o.name FROM organizations o JOIN copy_organizations co ON co.destination_organization_id = o.id WHERE co.run_id = 1 AND co.created
group_members|SELECT gm.group_id, gm.account_id FROM group_members gm JOIN copy_runs r ON r.group_id = gm.group_id WHERE r.id = 1
requests|SELECT r.id, r.site_id, r.project_id, r.number, r.summary, r.status, r.created, r.reporter_id, r.organization_id, r.copied_from FROM requests r JOIN copy_links l ON l.destination_id = r.id AND l.kind = 'request' WHERE l.run_id = 1
request_participants|SELECT p.request_id, p.account_id FROM request_participants p JOIN copy_links l ON l.destination_id = p.request_id AND l.kind = 'request' WHERE l.run_id = 1
comments|SELECT c.id, c.request_id, c.author_id, c.created, c.body FROM comments c JOIN copy_links l ON l.destination_id = c.request_id AND l.kind = 'request' WHERE l.run_id = 1
SQL
}

report() { # label copy_seconds baseline_seconds baseline_label rows rss_mb
  echo "$1: copy ${2} s, $(div "$customers" "$2" 0) customers/s, $(div "$5" "$2" 0) rows/s, peak RSS ${6} MB"
  echo "$1: $4 of the same $5 rows ${3} s ($(div "$5" "$3" 0) rows/s); ratio $(div "$2" "$3" 2)x"
}

# SQLite.
"$ferry" --db copy.db demo --customers "$customers" --seed 1 >/dev/null 2>&1
sync; t0=$(now)
/usr/bin/time -f %M -o rss.txt "$ferry" --db copy.db copy run --from demo-src --to demo-dst --report report >/dev/null 2>copy.log
t1=$(now)
took=$(secs "$t0" "$t1"); rss=$(( $(cat rss.txt) / 1024 ))
mkdir -p rows
rows=0
while IFS='|' read -r table sql; do
  sqlite3 -csv -header copy.db "$sql" > "rows/$table.csv"
  rows=$((rows + $(sqlite3 -csv copy.db "SELECT COUNT(*) FROM ($sql)")))
done < <(queries)
baseline=$(sqlite_import_median rows)
echo "demo: $customers source customers; the copy added $rows rows to the destination"
report "SQLite" "$took" "$baseline" "sqlite3 .import (median of $runs)" "$rows" "$rss"
rm -f copy.db*

if [ -n "$pg_url" ]; then
  db=ferry_bench_copy_$$
  admin=${pg_url%/*}
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $db" >/dev/null
  url="$admin/$db"
  "$ferry" --db "$url" demo --customers "$customers" --seed 1 >/dev/null 2>&1
  sync; t0=$(now)
  /usr/bin/time -f %M -o rss.txt "$ferry" --db "$url" copy run --from demo-src --to demo-dst --report report-pg >/dev/null 2>copy-pg.log
  t1=$(now)
  pg_took=$(secs "$t0" "$t1"); pg_rss=$(( $(cat rss.txt) / 1024 ))
  rm -rf pgrows; mkdir pgrows
  copy_sql=copy.sql; : > $copy_sql
  pg_rows=0
  while IFS='|' read -r table sql; do
    psql -q -v ON_ERROR_STOP=1 "$url" -c "\\copy ($sql) TO '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)"
    pg_rows=$((pg_rows + $(psql -qAt "$url" -c "SELECT COUNT(*) FROM ($sql) x")))
    cols=$(head -1 "pgrows/$table.csv" | sed 's/,/ text, /g; s/$/ text/')
    echo "CREATE TABLE bench_$table ($cols);" >> $copy_sql
    echo "\\copy bench_$table FROM '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)" >> $copy_sql
  done < <(queries)
  times=()
  for _ in $(seq "$runs"); do
    psql -q "$url" -c "DROP SCHEMA IF EXISTS bench CASCADE" -c "CREATE SCHEMA bench" >/dev/null
    sync; t0=$(now); PGOPTIONS="$PGOPTIONS -c search_path=bench" psql -q -v ON_ERROR_STOP=1 "$url" -f $copy_sql >/dev/null; t1=$(now)
    times+=("$(secs "$t0" "$t1")")
  done
  pg_base=$(median "${times[@]}")
  psql -q "$pg_url" -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
  report "PostgreSQL" "$pg_took" "$pg_base" "COPY (median of $runs)" "$pg_rows" "$pg_rss"
fi
