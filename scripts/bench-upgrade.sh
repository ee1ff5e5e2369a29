#!/usr/bin/env bash
# Upgrade speed: `ferry customer upgrade <site> --all-duplicates` on the
# destination of a copied demo, where every case-6 customer left a
# portal-only account beside an Atlassian account. Reported as accounts/s
# and against the sqlite3 shell's .import of the rows the upgrade wrote,
# measured in the same run. SQLite, release build; nothing here is a test.
#
#   scripts/bench-upgrade.sh [customers]
#
# customers defaults to 850000, which leaves a little over 100,000
# duplicates on demo-dst.
set -euo pipefail
customers=${1:-850000}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
bench_start upgrade

"$ferry" --db up.db demo --customers "$customers" --seed 1 >/dev/null 2>&1
"$ferry" --db up.db copy run --from demo-src --to demo-dst >/dev/null 2>&1
duplicates=$("$ferry" --db up.db customer list demo-dst --duplicates --type portal-only | tail -n +2 | wc -l)

# The rows the upgrade rewrites, taken before it runs: the portal-only
# duplicates it can upgrade (beside a verified, active Atlassian site user)
# and every row that references them.
dups="SELECT a.id FROM accounts a JOIN accounts b ON b.site_id IS NULL AND b.email_key = a.email_key"
dups="$dups AND b.email_verified AND b.active JOIN site_users su ON su.account_id = b.id AND su.site_id = a.site_id"
dups="$dups WHERE a.site_id = (SELECT id FROM sites WHERE slug = 'demo-dst') AND a.merged_into IS NULL"
mkdir rows
while IFS='|' read -r table sql; do
  sqlite3 -csv -header up.db "$sql" > "rows/$table.csv"
done <<SQL
accounts|SELECT * FROM accounts WHERE id IN ($dups)
requests|SELECT * FROM requests WHERE reporter_id IN ($dups)
comments|SELECT * FROM comments WHERE author_id IN ($dups)
request_participants|SELECT * FROM request_participants WHERE account_id IN ($dups)
project_customers|SELECT * FROM project_customers WHERE account_id IN ($dups)
organization_members|SELECT * FROM organization_members WHERE account_id IN ($dups)
SQL

# The upgrade, RUNS times (default 3), each on a fresh copy of the same
# database; the median is reported.
times=()
for _ in $(seq "${RUNS:-3}"); do
  rm -f run.db run.db-wal run.db-shm; cp up.db run.db; sync
  t0=$(now)
  /usr/bin/time -f %M -o rss.txt "$ferry" --db run.db customer upgrade demo-dst --all-duplicates > upgrade.txt 2>upgrade.log
  t1=$(now)
  times+=("$(secs "$t0" "$t1")")
done
took=$(median "${times[@]}"); rss=$(( $(cat rss.txt) / 1024 ))
upgraded=$(grep -c '^upgraded .*: portal-only' upgrade.txt || true)
# ...and the audit entries it wrote.
sqlite3 -csv -header run.db "SELECT * FROM audit_log WHERE action = 'customer.upgrade'" > rows/audit_log.csv
rows=0
for f in rows/*.csv; do rows=$((rows + $(tail -n +2 "$f" | wc -l))); done
baseline=$(sqlite_import_median rows)
echo "demo: $customers source customers; $duplicates portal-only duplicates on demo-dst; $upgraded upgraded"
echo "SQLite: upgrade ${took} s (median of ${RUNS:-3}: ${times[*]}), $(div "$upgraded" "$took" 0) accounts/s, $(div "$rows" "$took" 0) rows/s, peak RSS ${rss} MB"
echo "SQLite: sqlite3 .import (median of ${RUNS:-3}) of the same $rows rows ${baseline} s; ratio $(div "$took" "$baseline" 2)x"
