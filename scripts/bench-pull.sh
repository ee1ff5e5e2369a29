#!/usr/bin/env bash
# Speed of `ferry site pull` from a Jira Service Management Cloud site: the
# testkit's fake site (crates/ferry-testkit/examples/fake_jira.rs) serves the
# demo's source snapshot on loopback, and ferry pulls it over the REST APIs,
# once into a snapshot folder (--out) and once into a fresh SQLite database
# (the pull with its import), with the organization admin API on.
#
#   scripts/bench-pull.sh [customers]
#
# customers (or CUSTOMERS) defaults to 100000. RUNS (default 3) pulls of
# each kind, median reported. PAGE_CAP (default 50, Atlassian's own cap on
# servicedeskapi lists) is the most items the fake returns per page;
# THROTTLE_EVERY (default 0: never) makes every Nth request a 429. The fake
# runs on the same cores as ferry, so the figures are a lower bound of
# ferry's own speed; against a real tenant its rate limits dominate.
# Release build; nothing here is a test.
set -euo pipefail
customers=${1:-${CUSTOMERS:-100000}}
runs=${RUNS:-3}
page_cap=${PAGE_CAP:-50}
throttle_every=${THROTTLE_EVERY:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/ferry-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p ferry-cli
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p ferry-testkit --example fake_jira
ferry=$CARGO_TARGET_DIR/release/ferry
fake_bin=$CARGO_TARGET_DIR/release/examples/fake_jira

# Scratch folder removed on exit; the fake is stopped on any exit too.
work=$(mktemp -d /tmp/ferry-bench-pull.XXXXXX)
fake_pid=
cleanup() {
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$ferry" demo --customers "$customers" --seed 1 --snapshots-only snap >/dev/null

# The fake site, on port 0: it prints `url=...` once listening.
"$fake_bin" snap/demo-src --page-cap "$page_cap" --throttle-every "$throttle_every" >fake.out 2>fake.err &
fake_pid=$!
for _ in $(seq 600); do
  grep -q '^url=' fake.out 2>/dev/null && break
  kill -0 "$fake_pid" 2>/dev/null || { cat fake.err >&2; echo "fake_jira did not start" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^url=//p' fake.out)
[ -n "$url" ] || { echo "fake_jira printed no url" >&2; exit 1; }

# The fake's defaults; nothing here is a real secret.
export JIRA_EMAIL=admin@example.test JIRA_API_TOKEN=fake-token ATLASSIAN_ADMIN_API_KEY=fake-admin-key

# The fake's totals so far (SIGUSR1 makes it print one line to stderr):
# "requests throttled".
fake_totals() {
  local before after
  before=$(grep -c '^fake_jira: requests=' fake.err || true)
  kill -USR1 "$fake_pid"
  for _ in $(seq 100); do
    after=$(grep -c '^fake_jira: requests=' fake.err || true)
    [ "$after" -gt "$before" ] && break
    sleep 0.05
  done
  grep '^fake_jira: requests=' fake.err | tail -1 | sed -E 's/.*requests=([0-9]+) throttled=([0-9]+).*/\1 \2/'
}

# One pull under /usr/bin/time -v; $1 names the kind (out or sqlite), the
# rest are ferry's arguments. Appends "seconds rss_kb requests retries
# fake_requests cpu_seconds" (ferry's own requests and retries as it printed
# them, the requests the fake saw meanwhile, ferry's user + system CPU) to
# $kind.runs; a failed pull stops the bench with its output.
pull() {
  local kind=$1 before after
  shift
  before=$(fake_totals)
  sync
  if ! /usr/bin/time -v -o time.txt "$ferry" "$@" >pull.log 2>&1; then
    cat pull.log >&2; echo "pull ($kind) failed" >&2; exit 1
  fi
  after=$(fake_totals)
  python3 - "$kind" "$before" "$after" <<'EOF' >>"$kind.runs"
import re, sys
kind, before, after = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
t = open("time.txt").read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
cpu = sum(float(re.search(rf"{k} time \(seconds\): (\S+)", t).group(1)) for k in ("User", "System"))
m = re.search(r"(\d+) HTTP request\(s\), (\d+) of them retries", open("pull.log").read())
sent = int(after[0]) - int(before[0])
print(f"{secs:.2f} {rss} {m.group(1)} {m.group(2)} {sent} {cpu:.2f}")
EOF
  cp pull.log "$kind.log"
}

: >out.runs
: >sqlite.runs
for _ in $(seq "$runs"); do
  # (a) Into a snapshot folder: the pull alone, no database.
  rm -rf pulled
  pull out site pull demo-src --jira "$url" --org-id fake-org --admin-api "$url" --out pulled
  # (b) Into a fresh SQLite database: the pull and its import.
  rm -f ferry.db ferry.db-wal ferry.db-shm
  "$ferry" --db ferry.db org create demo >/dev/null
  "$ferry" --db ferry.db site create demo demo-src >/dev/null
  pull sqlite --db ferry.db site pull demo-src --jira "$url" --org-id fake-org --admin-api "$url"
done

# What the site holds, as the pull counted it.
rows() { sed -n "s/^  $1: //p" out.log; }
echo "demo source site: $(rows accounts.csv) accounts, $(rows requests.csv) requests, $(rows comments.csv) public comments pulled"
if [ "$throttle_every" = 0 ]; then throttle=never; else throttle="every $throttle_every requests"; fi
echo "fake: page cap $page_cap, throttling $throttle; median of $runs runs each"
echo
printf '| %-28s | %9s | %13s | %8s | %10s | %11s | %12s |\n' pull customers "requests sent" seconds requests/s customers/s "peak RSS MB"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ------------------------------ ----------- --------------- ---------- ------------ ------------- --------------
for kind in out sqlite; do
  read -r -a secs <<<"$(awk '{print $1}' "$kind.runs" | xargs)"
  read -r -a rss <<<"$(awk '{print $2}' "$kind.runs" | xargs)"
  sent=$(awk '{print $3}' "$kind.runs" | sort -n | uniq | xargs)
  took=$(median "${secs[@]}")
  rss_mb=$(python3 -c "import statistics, sys; print(round(statistics.median(map(int, sys.argv[1:])) / 1024))" "${rss[@]}")
  case $kind in out) label="--out (snapshot folder)";; sqlite) label="into SQLite (with import)";; esac
  # More than one request count means the runs differed: shown as a,b.
  req=${sent// /,}
  printf '| %-28s | %9s | %13s | %8s | %10s | %11s | %12s |\n' "$label" "$customers" "$req" "$took" \
    "$(div "${sent%% *}" "$took" 0)" "$(div "$customers" "$took" 0)" "$rss_mb"
done
echo
for kind in out sqlite; do
  echo "$kind runs (seconds, peak RSS kB, requests, retries, requests the fake saw, ferry CPU s):"
  sed 's/^/  /' "$kind.runs"
done

# The fake's own count: ferry counts every request it sent, retries
# included, so its total should equal the fake's; the throttle-free ones are
# the site's real work, the same with or without throttling.
read -r fake_requests fake_throttled <<<"$(fake_totals)"
ferry_requests=$(awk '{s += $3} END {print s}' out.runs sqlite.runs)
echo "fake: $fake_requests requests in all, $fake_throttled throttled, $((fake_requests - fake_throttled)) throttle-free; ferry counted $ferry_requests"
echo "fake peak RSS: $(sed -n 's/^VmHWM:\s*//p' "/proc/$fake_pid/status")"
kill "$fake_pid"; wait "$fake_pid" || true; fake_pid=
echo "requests per path over all pulls:"
grep '^fake_jira:   ' fake.err | sed 's/^fake_jira: //'
