#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, on 127.0.0.1 only.
#
#   bash scripts/pg.sh start       install PostgreSQL if missing, init .pgdata/, start it, create
#                                  the databases, print the ledger's URL
#   bash scripts/pg.sh url         print the ledger tests' SQLAlchemy URL (postgresql+psycopg://...)
#   bash scripts/pg.sh dagster-url print the Dagster storage tests' URL, on a database of its own
#                                  (postgresql+psycopg2://...: dagster-postgres needs psycopg2)
#   bash scripts/pg.sh stop        stop the server (the data folder is kept)
#   bash scripts/pg.sh status      exit 0 when the server answers
#
# Two databases: $ALLOCATOR_PG_DB (default allocator_test) for the ledger, whose tests reset its
# schema, and $ALLOCATOR_PG_DAGSTER_DB (default allocator_dagster_test) for the Dagster instance's
# storage tests. Idempotent: `start` on a running server only creates a missing database and
# prints the URL. The cluster lives in the
# git-ignored folder $PGDATA_DIR (default <project>/.pgdata, or /var/tmp/allocator-pg-<hash>
# when root's checkout is out of the postgres user's reach) and listens on a free port that is
# remembered in .pgdata/port. PostgreSQL refuses to run as root, so as root the server runs as
# the `postgres` user (created by the Debian package).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGDATA_GIVEN="${PGDATA_DIR:+1}"
PGDATA_DIR="${PGDATA_DIR:-$ROOT/.pgdata}"
DATA="$PGDATA_DIR/cluster"
PORT_FILE="$PGDATA_DIR/port"
DB_NAME="${ALLOCATOR_PG_DB:-allocator_test}"
DAGSTER_DB_NAME="${ALLOCATOR_PG_DAGSTER_DB:-allocator_dagster_test}"
DB_USER="allocator"

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bin() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then echo "$dir"; return 0; fi
    done
    return 1
}

ensure_installed() {
    if find_bin >/dev/null; then return 0; fi
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and installing it needs root"
    echo "pg.sh: installing postgresql with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    find_bin >/dev/null || die "postgresql installed but pg_ctl/initdb not found"
}

# Run a command as the unprivileged owner of the cluster.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PGDATA_DIR" postgres
        (cd / && runuser -u postgres -- "$@")  # the checkout may be out of its reach
    else
        "$@"
    fi
}

# As root the server runs as `postgres`, which must be able to reach the cluster's folder. A
# checkout inside a private directory (`mktemp -d` makes it 0700) is out of its reach; the
# default cluster then lives in /var/tmp/allocator-pg-<hash of the checkout's path> instead
# (same answer on every call, so `url` and `stop` find it).
resolve_dir() {
    [[ -z "$PGDATA_GIVEN" && "$(id -u)" == 0 ]] || return 0
    id postgres >/dev/null 2>&1 || return 0
    if ! (cd / && runuser -u postgres -- test -x "$(dirname "$PGDATA_DIR")"); then
        PGDATA_DIR="/var/tmp/allocator-pg-$(printf %s "$ROOT" | sha1sum | cut -c1-12)"
        DATA="$PGDATA_DIR/cluster"
        PORT_FILE="$PGDATA_DIR/port"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() {
    [[ -f "$PORT_FILE" && -f "$DATA/postmaster.pid" ]] || return 1
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")" >/dev/null 2>&1
}

url() {
    [[ -f "$PORT_FILE" ]] || die "no cluster yet: run 'bash scripts/pg.sh start' first"
    echo "postgresql+psycopg://$DB_USER@127.0.0.1:$(cat "$PORT_FILE")/$DB_NAME"
}

dagster_url() {
    [[ -f "$PORT_FILE" ]] || die "no cluster yet: run 'bash scripts/pg.sh start' first"
    echo "postgresql+psycopg2://$DB_USER@127.0.0.1:$(cat "$PORT_FILE")/$DAGSTER_DB_NAME"
}

# Create database $1 on the running server unless it exists.
ensure_db() {
    local port
    port="$(cat "$PORT_FILE")"
    if ! "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1; then
        "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$1"
    fi
}

start() {
    ensure_installed
    BIN="$(find_bin)"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PGDATA_DIR" postgres
    fi
    resolve_dir
    mkdir -p "$PGDATA_DIR"
    [[ "$(id -u)" != 0 ]] || chown postgres "$PGDATA_DIR"
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        rm -rf "$DATA"
        as_owner "$BIN/initdb" -D "$DATA" -U "$DB_USER" --auth=trust -E UTF8 --no-locale >/dev/null
    fi
    if is_running; then
        ensure_db "$DB_NAME"
        ensure_db "$DAGSTER_DB_NAME"
        url
        return 0
    fi
    local port
    port="$(free_port)"
    echo "$port" > "$PORT_FILE"
    # A stale pid file from a killed server would stop pg_ctl; the server itself checks it too.
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$PGDATA_DIR/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $PGDATA_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$PGDATA_DIR/server.log" >&2; die "the server did not start"; }
    ensure_db "$DB_NAME"
    ensure_db "$DAGSTER_DB_NAME"
    url
}

stop() {
    BIN="$(find_bin)" || die "PostgreSQL is not installed"
    if [[ -f "$DATA/postmaster.pid" ]]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
}

resolve_dir
case "${1:-start}" in
    start) start ;;
    url) url ;;
    dagster-url) dagster_url ;;
    stop) stop ;;
    status) BIN="$(find_bin)" || exit 1; is_running ;;
    *) die "usage: $0 start|url|dagster-url|stop|status" ;;
esac
