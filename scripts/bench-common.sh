# Shared by the bench scripts: timing and arithmetic helpers, and the tools
# they need on a fresh machine. Sourced, not run.
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
div() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.{sys.argv[3]}f}')" "$1" "$2" "$3"; }
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

# Median seconds of RUNS (default 3) loads of every CSV in folder $1 by the
# sqlite3 shell's .import into fresh tables: the database's own bulk load.
sqlite_import_median() {
  { echo ".mode csv"; for f in "$1"/*.csv; do echo ".import $f t_$(basename "$f" .csv)"; done; } > import.sql
  local times=() t0 t1
  for _ in $(seq "${RUNS:-3}"); do
    rm -f baseline.db; sync
    t0=$(now); sqlite3 baseline.db < import.sql; t1=$(now)
    times+=("$(secs "$t0" "$t1")")
  done
  rm -f baseline.db
  median "${times[@]}"
}

# Builds the release binary ($ferry) and moves into a scratch folder ($work)
# removed on exit. $1 names the bench. FERRY_BIN names a binary to measure
# instead, built beforehand (copy it out of the target folder first, so that
# a build meanwhile does not change it midway).
bench_start() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/ferry-target}
  if [ -n "${FERRY_BIN:-}" ]; then
    [ -x "$FERRY_BIN" ] || { echo "FERRY_BIN=$FERRY_BIN is not an executable file" >&2; exit 1; }
    ferry=$(realpath "$FERRY_BIN")
  else
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    ferry=$CARGO_TARGET_DIR/release/ferry
  fi
  work=$(mktemp -d "/tmp/ferry-bench-$1.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cd "$work"
}
