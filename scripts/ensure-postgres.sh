#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the gateway tests (they
# create and drop their own uniquely named databases). Installs and starts the Debian
# package when missing (as root); gives the postgres role the password "postgres" only
# when password authentication is what the server asks for (a trust setup is left as is).
# Prints the URL to use as RS_TEST_PG_URL on its last line.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
URL_TRUST="postgresql://postgres@${HOST}:${PORT}/postgres"
URL_PW="postgresql://postgres:postgres@${HOST}:${PORT}/postgres"

answers() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-postgres: PostgreSQL missing. Run: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "ensure-postgres: installing postgresql with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

if ! answers; then
  echo "ensure-postgres: starting the PostgreSQL cluster" >&2
  if [ "$(id -u)" -eq 0 ]; then
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    if [ -z "$cluster" ]; then
      version=$(ls /usr/lib/postgresql | sort -V | tail -1)
      pg_createcluster "$version" main >/dev/null
      cluster="$version main"
    fi
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start || true
  fi
  for _ in $(seq 1 30); do answers && break; sleep 1; done
  answers || { echo "ensure-postgres: server did not come up" >&2; exit 1; }
fi

if psql "$URL_TRUST" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "${URL_TRUST%/postgres}/postgres"
elif psql "$URL_PW" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "${URL_PW%/postgres}/postgres"
elif [ "$(id -u)" -eq 0 ]; then
  su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null
  echo "${URL_PW%/postgres}/postgres"
else
  echo "ensure-postgres: cannot log in as postgres on ${HOST}:${PORT}" >&2
  exit 1
fi
