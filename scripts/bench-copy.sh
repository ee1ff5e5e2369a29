#!/usr/bin/env bash
# Copy speed: `ferry copy run` of the demo against the database's own bulk
# load of exactly the rows the copy added to the destination, measured in the
# same run on the same machine, in two ways:
#   - into fresh tables with no index, key or constraint (`sqlite3` shell
#     `.import`; PostgreSQL `COPY`): the raw speed of loading the rows;
#   - into the destination's own tables, on a copy of the database taken
#     before the copy ran: the same indexes, unique keys and foreign keys the
#     copy must keep. PostgreSQL: `COPY` into each table, all in one
#     transaction. SQLite: `INSERT INTO table SELECT` from the rows already
#     loaded into a scratch database (the shell's `.import` cannot name
#     columns or write NULL), one transaction, foreign keys on, ferry's cache
#     size; loading the CSV into the scratch database is not counted.
#   - the same, plus the run's own records in ferry's tables (the run row,
#     its decisions, its links and its grants: what resume, re-runs and
#     rollback need), as one transaction: every row the copy writes.
#
#   scripts/bench-copy.sh [customers] [postgres-url]
#
# customers defaults to 1000000. With a PostgreSQL URL (a server where the
# script may create and drop databases) PostgreSQL is measured too. RUNS
# (default 3) loads of each kind, median reported. Release build; nothing
# here is a test.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
customers=${1:-1000000}
pg_url=${2:-}
runs=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start copy

# The rows run 1 added to the destination, one query per table, in an order
# foreign keys accept: table|query. Columns are named as in the table.
queries() {
  cat <<'SQL'
projects|SELECT p.id, p.site_id, p.key, p.name FROM projects p JOIN copy_projects cp ON cp.destination_project_id = p.id WHERE cp.run_id = 1 AND cp.created
organizations|SELECT o.id, o.site_id, o.name FROM organizations o JOIN copy_organizations co ON co.destination_organization_id = o.id WHERE co.run_id = 1 AND co.created
groups|SELECT g.id, g.site_id, g.name, g.name_key, g.state, g.created_by_run FROM groups g JOIN copy_runs r ON r.group_id = g.id WHERE r.id = 1
accounts|SELECT a.id, a.kind, a.site_id, a.ext_id, a.email, a.email_key, a.display_name, a.active, a.email_verified FROM accounts a JOIN copy_customers cc ON cc.destination_account_id = a.id WHERE cc.run_id = 1 AND cc.new_account_ext_id IS NOT NULL
site_users|SELECT a AS site_id, b AS account_id FROM copy_grants WHERE run_id = 1 AND kind = 'site_user'
project_customers|SELECT g.a AS project_id, g.b AS account_id, m.seq FROM copy_grants g JOIN project_customers m ON m.project_id = g.a AND m.account_id = g.b WHERE g.run_id = 1 AND g.kind = 'customer'
organization_members|SELECT g.a AS organization_id, g.b AS account_id, m.seq FROM copy_grants g JOIN organization_members m ON m.organization_id = g.a AND m.account_id = g.b WHERE g.run_id = 1 AND g.kind = 'organization_member'
organization_projects|SELECT a AS organization_id, b AS project_id FROM copy_grants WHERE run_id = 1 AND kind = 'organization_project'
group_members|SELECT gm.group_id, gm.account_id, gm.seq FROM group_members gm JOIN copy_runs r ON r.group_id = gm.group_id WHERE r.id = 1
requests|SELECT r.id, r.site_id, r.project_id, r.number, r.summary, r.status, r.created, r.reporter_id, r.organization_id, r.copied_from FROM requests r JOIN copy_links l ON l.destination_id = r.id AND l.kind = 'request' WHERE l.run_id = 1
request_participants|SELECT p.request_id, p.account_id FROM request_participants p JOIN copy_links l ON l.destination_id = p.request_id AND l.kind = 'request' WHERE l.run_id = 1
comments|SELECT c.id, c.request_id, c.author_id, c.created, c.body FROM comments c JOIN copy_links l ON l.destination_id = c.request_id AND l.kind = 'request' WHERE l.run_id = 1
SQL
}

# The run's own records (ferry's tables), loaded after the rows above.
ledger() {
  cat <<'SQL'
copy_runs|SELECT * FROM copy_runs WHERE id = 1
copy_projects|SELECT * FROM copy_projects WHERE run_id = 1
copy_organizations|SELECT * FROM copy_organizations WHERE run_id = 1
copy_customers|SELECT * FROM copy_customers WHERE run_id = 1
copy_links|SELECT * FROM copy_links WHERE run_id = 1
copy_grants|SELECT * FROM copy_grants WHERE run_id = 1
SQL
}

# Columns that may hold NULL: the SQLite scratch tables hold '' for them.
nullable=" site_id organization_id copied_from created_by_run group_name group_id finished_at error matched_account_id new_account_ext_id "

report() { # label copy_seconds rows rss_mb
  echo "$1: copy ${2} s, $(div "$customers" "$2" 0) customers/s, $(div "$3" "$2" 0) rows/s, peak RSS ${4} MB"
}
baseline() { # label copy_seconds baseline_seconds baseline_label rows
  echo "$1: $4 of the same $5 rows ${3} s ($(div "$5" "$3" 0) rows/s); copy/load $(div "$2" "$3" 2)x"
}

# SQLite.
"$ferry" --db copy.db demo --customers "$customers" --seed 1 >/dev/null 2>&1
sqlite3 copy.db "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp copy.db before.db
sync; t0=$(now)
/usr/bin/time -f %M -o rss.txt "$ferry" --db copy.db copy run --from demo-src --to demo-dst --report report >/dev/null 2>copy.log
t1=$(now)
took=$(secs "$t0" "$t1"); rss=$(( $(cat rss.txt) / 1024 ))
mkdir -p rows ledger
rows=0; ledger_rows=0
{ echo ".mode csv"; } > scratch.sql
{ echo "PRAGMA foreign_keys = ON;"; echo "PRAGMA synchronous = NORMAL;"; echo "PRAGMA cache_size = -262144;"
  echo "ATTACH 'scratch.db' AS scratch;"; echo "BEGIN;"; } > real.sql
: > ledger.sql
# Dumps each table|query of stdin into folder $1, adds its load to $2 and
# prints how many rows it dumped.
sqlite_rows() {
  local n=0 table sql cols select c
  while IFS='|' read -r table sql; do
    sqlite3 -csv -header copy.db "$sql" > "$1/$table.csv"
    n=$((n + $(sqlite3 -csv copy.db "SELECT COUNT(*) FROM ($sql)")))
    echo ".import $1/$table.csv s_$table" >> scratch.sql
    cols=$(head -1 "$1/$table.csv")
    select=""
    for c in ${cols//,/ }; do
      if [[ $nullable == *" $c "* ]]; then select+="NULLIF($c, ''), "; else select+="$c, "; fi
    done
    echo "INSERT INTO main.$table ($cols) SELECT ${select%, } FROM scratch.s_$table;" >> "$2"
  done
  echo "$n"
}
rows=$(sqlite_rows rows real.sql < <(queries))
ledger_rows=$(sqlite_rows ledger ledger.sql < <(ledger))
{ grep -v '^COMMIT;' real.sql; cat ledger.sql; echo "COMMIT;"; } > all.sql
echo "COMMIT;" >> real.sql
rm -f scratch.db; sqlite3 scratch.db < scratch.sql
sqlite_load_median() { # sql file
  local times=() t0 t1
  for _ in $(seq "$runs"); do
    cp before.db load.db; rm -f load.db-wal load.db-shm; sync
    t0=$(now); sqlite3 -bail load.db < "$1"; t1=$(now)
    times+=("$(secs "$t0" "$t1")")
  done
  loaded=$(sqlite3 load.db "SELECT COUNT(*) FROM requests")
  [ "$loaded" = "$(sqlite3 copy.db "SELECT COUNT(*) FROM requests")" ] || { echo "the load into the destination's tables lost rows" >&2; exit 1; }
  median "${times[@]}"
}
real_base=$(sqlite_load_median real.sql)
all_base=$(sqlite_load_median all.sql)
rm -f load.db* scratch.db before.db*
bare_base=$(sqlite_import_median rows)
echo "demo: $customers source customers; the copy added $rows rows to the destination and $ledger_rows to the run's records"
report "SQLite" "$took" "$rows" "$rss"
baseline "SQLite" "$took" "$real_base" "INSERT into the destination's own tables (median of $runs)" "$rows"
baseline "SQLite" "$took" "$all_base" "INSERT of those rows and the run's records into their own tables (median of $runs)" "$((rows + ledger_rows))"
baseline "SQLite" "$took" "$bare_base" "sqlite3 .import into fresh tables (median of $runs)" "$rows"
rm -f copy.db*

if [ -n "$pg_url" ]; then
  db=ferry_bench_copy_$$
  admin=${pg_url%/*}
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $db" >/dev/null
  url="$admin/$db"
  "$ferry" --db "$url" demo --customers "$customers" --seed 1 >/dev/null 2>&1
  psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE ${db}_before TEMPLATE $db" >/dev/null
  sync; t0=$(now)
  /usr/bin/time -f %M -o rss.txt "$ferry" --db "$url" copy run --from demo-src --to demo-dst --report report-pg >/dev/null 2>copy-pg.log
  t1=$(now)
  pg_took=$(secs "$t0" "$t1"); pg_rss=$(( $(cat rss.txt) / 1024 ))
  rm -rf pgrows; mkdir pgrows
  bare_sql=bare.sql; : > $bare_sql
  real_sql=real-pg.sql; echo "BEGIN;" > $real_sql
  pg_rows=0
  while IFS='|' read -r table sql; do
    psql -q -v ON_ERROR_STOP=1 "$url" -c "\\copy ($sql) TO '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)"
    pg_rows=$((pg_rows + $(psql -qAt "$url" -c "SELECT COUNT(*) FROM ($sql) x")))
    cols=$(head -1 "pgrows/$table.csv")
    echo "CREATE TABLE bench_$table ($(echo "$cols" | sed 's/,/ text, /g; s/$/ text/'));" >> $bare_sql
    echo "\\copy bench_$table FROM '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)" >> $bare_sql
    echo "\\copy $table ($cols) FROM '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)" >> $real_sql
  done < <(queries)
  pg_ledger_rows=0
  all_sql=all-pg.sql; cp $real_sql $all_sql
  while IFS='|' read -r table sql; do
    psql -q -v ON_ERROR_STOP=1 "$url" -c "\\copy ($sql) TO '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)"
    pg_ledger_rows=$((pg_ledger_rows + $(psql -qAt "$url" -c "SELECT COUNT(*) FROM ($sql) x")))
    cols=$(head -1 "pgrows/$table.csv")
    echo "\\copy $table ($cols) FROM '$work/pgrows/$table.csv' WITH (FORMAT csv, HEADER true)" >> $all_sql
  done < <(ledger)
  echo "COMMIT;" >> $real_sql
  echo "COMMIT;" >> $all_sql
  times=()
  for _ in $(seq "$runs"); do
    psql -q "$url" -c "DROP SCHEMA IF EXISTS bench CASCADE" -c "CREATE SCHEMA bench" >/dev/null
    sync; t0=$(now); PGOPTIONS="$PGOPTIONS -c search_path=bench" psql -q -v ON_ERROR_STOP=1 "$url" -f $bare_sql >/dev/null; t1=$(now)
    times+=("$(secs "$t0" "$t1")")
  done
  pg_bare=$(median "${times[@]}")
  # Median seconds of RUNS loads of SQL file $1 into a fresh copy of the
  # database as it was before the copy.
  pg_load_median() {
    local times=() t0 t1
    for _ in $(seq "$runs"); do
      psql -q "$pg_url" -c "DROP DATABASE IF EXISTS ${db}_load" -c "CREATE DATABASE ${db}_load TEMPLATE ${db}_before" >/dev/null
      sync; t0=$(now); psql -q -v ON_ERROR_STOP=1 "$admin/${db}_load" -f "$1" >/dev/null; t1=$(now)
      times+=("$(secs "$t0" "$t1")")
    done
    median "${times[@]}"
  }
  pg_real=$(pg_load_median $real_sql)
  pg_all=$(pg_load_median $all_sql)
  for d in "$db" "${db}_before" "${db}_load"; do psql -q "$pg_url" -c "DROP DATABASE $d WITH (FORCE)" >/dev/null; done
  report "PostgreSQL" "$pg_took" "$pg_rows" "$pg_rss"
  baseline "PostgreSQL" "$pg_took" "$pg_real" "COPY into the destination's own tables (median of $runs)" "$pg_rows"
  baseline "PostgreSQL" "$pg_took" "$pg_all" "COPY of those rows and the run's records into their own tables (median of $runs)" "$((pg_rows + pg_ledger_rows))"
  baseline "PostgreSQL" "$pg_took" "$pg_bare" "COPY into fresh tables (median of $runs)" "$pg_rows"
fi
