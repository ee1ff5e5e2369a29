#!/usr/bin/env bash
# Import speed of `ferry site import` against the database's own bulk load of
# the same files, measured in the same run on the same machine.
#
#   scripts/bench-import.sh [customers] [postgres-url]
#
# customers defaults to 1000000 (about 2,000,000 requests); with a PostgreSQL
# URL (a database the script may drop and create tables in) PostgreSQL is
# measured too, against PostgreSQL's own COPY of the rows ferry wrote into
# ferry's own tables (same indexes, keys, foreign keys; the baseline of
# issue 17) and, as before, psql's \copy of the files into fresh tables. RUNS (default 3) runs of each SQLite
# measurement, median reported. Release build; nothing here is a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start import


"$ferry" demo --customers "$customers" --seed 1 --snapshots-only snap >/dev/null
snap=snap/demo-src
rows=0
for f in "$snap"/*.csv; do
  n=$(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline="", encoding="utf-8"))) - 1)' "$f")
  rows=$((rows + n))
done
accounts=$(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline="", encoding="utf-8"))))' "$snap/accounts.csv") - 1))
requests=$(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline="", encoding="utf-8"))))' "$snap/requests.csv") - 1))

runs=${RUNS:-3}

# Baseline: the sqlite3 shell's .import of every file into fresh tables.
baseline=$(sqlite_import_median "$snap")

# ferry: the same files through validation into ferry's schema (WAL, indexes).
times=()
for _ in $(seq "$runs"); do
  rm -f ferry.db ferry.db-wal ferry.db-shm
  "$ferry" --db ferry.db org create demo >/dev/null
  "$ferry" --db ferry.db site create demo demo-src >/dev/null
  sync; t0=$(now)
  /usr/bin/time -f %M -o rss.txt "$ferry" --db ferry.db site import demo-src "$snap" >/dev/null 2>ferry.log
  t1=$(now)
  times+=("$(secs "$t0" "$t1")")
done
took=$(median "${times[@]}")
rss_mb=$(( $(cat rss.txt) / 1024 ))
rm -f ferry.db ferry.db-wal ferry.db-shm

ratio=$(div "$took" "$baseline" 2)
rate=$(div "$rows" "$took" 0)
base_rate=$(div "$rows" "$baseline" 0)
echo "snapshot: $accounts accounts, $requests requests, $rows rows in all"
echo "median of $runs runs each"
echo "sqlite3 .import:      ${baseline} s  ($base_rate rows/s)"
echo "ferry import sqlite:  ${took} s  ($rate rows/s, peak RSS ${rss_mb} MB)  ratio ${ratio}x"

if [ -n "$pg_url" ]; then
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "DROP SCHEMA IF EXISTS ferry_bench_copy CASCADE" -c "CREATE SCHEMA ferry_bench_copy" >/dev/null
  copy_sql=copy.sql
  : > $copy_sql
  for f in "$snap"/*.csv; do
    t=ferry_bench_copy.t_$(basename "$f" .csv)
    cols=$(head -1 "$f" | sed 's/,/ text, /g; s/$/ text/')
    echo "CREATE TABLE $t ($cols);" >> $copy_sql
    echo "\\copy $t FROM '$work/$f' WITH (FORMAT csv, HEADER true)" >> $copy_sql
  done
  sync; t0=$(now); psql -q -v ON_ERROR_STOP=1 "$pg_url" -f $copy_sql >/dev/null; t1=$(now)
  pg_base=$(secs "$t0" "$t1")
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "DROP SCHEMA ferry_bench_copy CASCADE" >/dev/null
  db=ferry_bench_$$
  admin=${pg_url%/*}
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $db" >/dev/null
  "$ferry" --db "$admin/$db" org create demo >/dev/null
  "$ferry" --db "$admin/$db" site create demo demo-src >/dev/null
  sync; t0=$(now); "$ferry" --db "$admin/$db" site import demo-src "$snap" >/dev/null 2>&1; t1=$(now)
  pg_took=$(secs "$t0" "$t1")
  # The honest baseline: PostgreSQL's own COPY of exactly the rows ferry's
  # import wrote, into ferry's own tables (same indexes, keys and foreign
  # keys) of a fresh database, in one transaction, in foreign-key order.
  own=${db}_own
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $own" >/dev/null
  "$ferry" --db "$admin/$own" org create demo >/dev/null
  "$ferry" --db "$admin/$own" site create demo demo-src >/dev/null
  load_sql=own-load.sql
  echo "BEGIN;" > $load_sql
  own_rows=0
  for t in accounts site_users customer_terms projects groups group_members customer_roles organizations \
           organization_members organization_projects project_customers requests request_participants comments; do
    psql -q -v ON_ERROR_STOP=1 "$admin/$db" -c "\\copy (SELECT * FROM $t) TO '$work/own-$t.tsv'" >/dev/null
    own_rows=$((own_rows + $(wc -l < "own-$t.tsv")))
    echo "\\copy $t FROM '$work/own-$t.tsv'" >> $load_sql
  done
  echo "COMMIT;" >> $load_sql
  sync; t0=$(now); psql -q -v ON_ERROR_STOP=1 "$admin/$own" -f $load_sql >/dev/null; t1=$(now)
  pg_own=$(secs "$t0" "$t1")
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "DROP DATABASE $db" -c "DROP DATABASE $own" >/dev/null
  echo "psql \\copy into fresh text tables:           ${pg_base} s  ($(div "$rows" "$pg_base" 0) rows/s)"
  echo "COPY of ferry's $own_rows rows into its own tables: ${pg_own} s  ($(div "$own_rows" "$pg_own" 0) rows/s)"
  echo "ferry import pg:      ${pg_took} s  ($(div "$rows" "$pg_took" 0) rows/s)  ratio $(div "$pg_took" "$pg_own" 2)x own-table COPY (target 2x), $(div "$pg_took" "$pg_base" 2)x fresh-table \\copy"
fi
