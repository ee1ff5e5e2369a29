#!/usr/bin/env bash
# The API contract, checked by tools nobody on the project wrote: starts
# `ferry serve --demo` on a scratch SQLite database and a free port, signs
# in as the demo admin, makes an API token, then
#   - validates the served /api/v1/openapi.json with openapi-spec-validator;
#   - runs `schemathesis run --checks all` against the server with that
#     token (no 5xx, no response outside the document, no schema-valid
#     request refused, no schema-invalid one accepted; the one exception is
#     in scripts/schemathesis.toml, with its reason).
# Both come from PyPI, pinned, into a virtual environment kept between runs.
#
#   scripts/api-contract.sh            (scripts/test runs it after the suites)
#
# FERRY_SCHEMATHESIS_SEED picks schemathesis's seed (default fixed, so CI is
# repeatable); FERRY_SCHEMATHESIS_EXAMPLES the examples per operation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/ferry-target}
venv=${FERRY_API_VENV:-$CARGO_TARGET_DIR/api-contract-venv}
if [ ! -x "$venv/bin/schemathesis" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openapi-spec-validator==0.9.0 schemathesis==4.32.5
fi
cargo build --quiet --manifest-path "$root/Cargo.toml" -p ferry-cli
ferry=$CARGO_TARGET_DIR/debug/ferry

# Checks the contract of a server on database $1 (a SQLite file or a
# postgres:// URL).
contract() {
  local db=$1 work port server base password token
  work=$(mktemp -d /tmp/ferry-api-contract.XXXXXX)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$ferry" --db "${db:-$work/ferry.db}" serve --demo --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
  server=$!
  servers="${servers:-} $server"
  for _ in $(seq 1 240); do
    grep -q "ferry serving on" "$work/serve.log" && break
    kill -0 $server 2>/dev/null || { cat "$work/serve.log" >&2; return 1; }
    sleep 0.25
  done
  base=http://127.0.0.1:$port
  password=$(sed -n 's/^sign in as admin@demo.example with password \([0-9a-f]*\)$/\1/p' "$work/serve.log")
  token=$(python3 - "$base" "$password" <<'PY'
import http.cookiejar, json, sys, time, urllib.request
base, password = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
def post(path, body):
    request = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    return json.load(opener.open(request))
post("/api/v1/session", {"email": "admin@demo.example", "password": password})
token = post("/api/v1/tokens", {"name": "api-contract"})["token"]
# Run 1, the demo's copy, for the operations on runs to work on.
run = post("/api/v1/copies", {"from": "demo-src", "to": "demo-dst"})["run"]
for _ in range(600):
    if json.load(opener.open(f"{base}/api/v1/copies/{run}"))["state"] not in ("planning", "applying"):
        break
    time.sleep(0.1)
# Pull 1, of a Jira site this machine cannot reach (it fails, and exists),
# for the operation on pulls to work on.
post("/api/v1/sites/demo-src/pull", {"jira": "https://ferry-contract.atlassian.net", "email": "admin@demo.example", "api_token": "none"})
print(token)
PY
  )
  python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$base/api/v1/openapi.json" "$work/openapi.json"
  local status=0
  "$venv/bin/openapi-spec-validator" "$work/openapi.json" || status=1
  (cd "$work" && "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --checks all -H "Authorization: Bearer $token" \
    --max-examples "${FERRY_SCHEMATHESIS_EXAMPLES:-50}" --seed "${FERRY_SCHEMATHESIS_SEED:-20261201}" \
    --generation-database none --no-color) || status=1
  kill $server 2>/dev/null || true
  wait $server 2>/dev/null || true
  rm -rf "$work"
  return $status
}

# Servers still running when this script stops (a failed step) go with it.
trap 'for pid in ${servers:-}; do kill "$pid" 2>/dev/null || true; done' EXIT
echo "API contract on SQLite"
contract ""
# PostgreSQL too, when the suite's server is known (scripts/test exports
# it): a fresh database, dropped after.
if [ -n "${FERRY_TEST_PG:-}" ]; then
  name=ferry_api_contract_$$
  psql "$FERRY_TEST_PG" -qc "CREATE DATABASE $name" >/dev/null
  trap 'for pid in ${servers:-}; do kill "$pid" 2>/dev/null || true; done
        psql "$FERRY_TEST_PG" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
  echo "API contract on PostgreSQL"
  contract "${FERRY_TEST_PG%/*}/$name"
fi
