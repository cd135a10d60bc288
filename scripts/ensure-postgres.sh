#!/usr/bin/env bash
# Print an admin URL of a PostgreSQL server for the test suite.
#
# Uses TEST_POSTGRES_URL (default: the local server at 127.0.0.1:5432, user postgres, trust
# auth) when it answers. Otherwise starts a throwaway cluster with Debian's PostgreSQL
# binaries (installing them first when run as root) on port 54329 and prints its URL.
# Log lines go to stderr; only the URL goes to stdout.
set -euo pipefail

PY=${PY:-.venv/bin/python}
URL=${TEST_POSTGRES_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/postgres}
PORT=54329
THROWAWAY="postgresql+psycopg2://postgres@127.0.0.1:${PORT}/postgres"

answers() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys
from sqlalchemy import create_engine, text
with create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect() as c:
    c.execute(text("SELECT 1"))
PYEOF
}

if answers "$URL"; then echo "$URL"; exit 0; fi
if answers "$THROWAWAY"; then echo "$THROWAWAY"; exit 0; fi

echo "ensure-postgres: no server at $URL; starting a throwaway cluster" >&2
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-postgres: PostgreSQL binaries are missing; install Debian's 'postgresql'" \
         "package or set TEST_POSTGRES_URL" >&2
    exit 1
  fi
  echo "ensure-postgres: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

DIR=$(mktemp -d /tmp/experimentos-pg.XXXXXX)
AS=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home "$DIR" postgres
  chown postgres "$DIR"
  AS=(runuser -u postgres --)
fi
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >&2
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
echo "$THROWAWAY"
