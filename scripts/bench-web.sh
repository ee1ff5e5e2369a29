#!/usr/bin/env bash
# Web speed: with a million demo customers, the console's customers page
# (paging from the start, and forwards and back from deep cursors; searches
# by a word of the name, by part of an email, without accents, common ones
# and rare ones; the duplicates filter) and a help-center "My requests" page, each
# under wrk with 50 connections on loopback for DURATION (default 30s).
# Reports requests/s and latency percentiles (p99 is the target: < 50 ms).
# SQLite, release build; nothing here is a test.
#
#   scripts/bench-web.sh [customers]
set -euo pipefail
customers=${1:-1000000}
duration=${DURATION:-30s}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
bench_start web

"$ferry" --db web.db demo --customers "$customers" --seed 1 >/dev/null 2>&1
admin_password=$("$ferry" --db web.db admin create demo bench@demo.example | sed 's/.*: //')
# A source customer with requests, for "My requests".
email=$(sqlite3 web.db "SELECT a.email FROM accounts a JOIN requests r ON r.reporter_id = a.id
  JOIN sites s ON s.id = a.site_id WHERE s.slug = 'demo-src' AND a.active ORDER BY a.id LIMIT 1")
customer_password=$("$ferry" --db web.db customer password demo-src "$email" | sed 's/.*: //')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ferry" --db web.db serve --listen "127.0.0.1:$port" >serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/sign-in" >/dev/null && break; sleep 0.1; done

session() { # form-path email password cookie-name -> the session cookie
  curl -fs -o /dev/null -c - --data-urlencode "email=$2" --data-urlencode "password=$3" "$base$1" |
    awk -v name="$4" '$6 == name { print $7 }'
}
admin_cookie=ferry_session=$(session /sign-in bench@demo.example "$admin_password" ferry_session)
customer_cookie=ferry_help_session=$(session /help/demo-src/sign-in "$email" "$customer_password" ferry_help_session)
[ "$admin_cookie" != ferry_session= ] && [ "$customer_cookie" != ferry_help_session= ] ||
  { echo "could not sign in" >&2; exit 1; }

# Cursors deep into the list: the keys at a quarter, half and three quarters.
cursor() { sqlite3 web.db "SELECT email_key || '|portal-only' FROM accounts WHERE site_id = (SELECT id FROM sites WHERE slug = 'demo-src') ORDER BY email_key LIMIT 1 OFFSET $1" | python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read().strip()))'; }
portal=$(sqlite3 web.db "SELECT COUNT(*) FROM accounts WHERE site_id = (SELECT id FROM sites WHERE slug = 'demo-src')")
half=$((portal / 2))
cat > customers.lua <<LUA
local paths = {
  "/console/sites/demo-src/customers",
  "/console/sites/demo-src/customers?after=$(cursor $((half / 2)))",
  "/console/sites/demo-src/customers?after=$(cursor "$half")",
  "/console/sites/demo-src/customers?after=$(cursor $((half + half / 2)))",
  "/console/sites/demo-src/customers?before=$(cursor "$half")",
  "/console/sites/demo-src/customers?q=murphy",
  "/console/sites/demo-src/customers?q=murphy4711",
  "/console/sites/demo-src/customers?q=alice.smith12",
  "/console/sites/demo-src/customers?q=amelie.dubois99",
  "/console/sites/demo-src/customers?q=example.com",
  "/console/sites/demo-src/customers?q=M%C3%BCller%20777",
  "/console/sites/demo-src/customers?type=atlassian",
  "/console/sites/demo-dst/customers?duplicates=true",
  "/console/sites/demo-dst/customers?duplicates=true&q=okafor12",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
LUA

run() { # label cookie path [script]
  local script=()
  [ -n "${4:-}" ] && script=(-s "$4")
  wrk -t2 -c50 -d"$duration" --latency -H "Cookie: $2" "${script[@]}" "$base$3" > "wrk-$1.txt"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ { print $2 }' "wrk-$1.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "wrk-$1.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "wrk-$1.txt")
  errors=$(grep -E "Non-2xx|Socket errors" "wrk-$1.txt" || true)
  echo "$1: $rps requests/s, p50 $p50, p99 $p99 (wrk, 50 connections, $duration)${errors:+; $errors}"
}
echo "demo: $customers source customers (SQLite)"
run "customers page" "$admin_cookie" /console/sites/demo-src/customers customers.lua
run "help-center My requests" "$customer_cookie" /help/demo-src
