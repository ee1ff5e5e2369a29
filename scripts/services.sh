#!/usr/bin/env bash
# Makes sure the PostgreSQL server the test suite uses is running on
# 127.0.0.1:5432, and that Chromium and ChromeDriver are there for the
# browser suite, installing them from Debian's packages on a bare machine.
# Prints the FERRY_TEST_PG URL the suite should use.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
# The browser suite drives Debian's Chromium through its ChromeDriver.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }

url=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
if ! psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian server asks for a password over TCP: give the postgres
  # role one, for this machine's tests only.
  as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
  url=postgres://postgres:postgres@127.0.0.1:5432/postgres
  psql "$url" -qAtc 'SELECT 1' >/dev/null
fi
echo "$url"
