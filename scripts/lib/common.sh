# Shared by scripts/run, scripts/test and the test suite: packages, the project's PostgreSQL
# cluster, and the local nginx configuration derived from nginx/articles-fcgi.conf.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PACKAGES=(libfcgi-dev libssl-dev libpq-dev libcurl4-openssl-dev nginx postgresql systemd curl openssl python3)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages the build and the stack need, and any given as arguments (the
# tests' and the benchmark's wrk), if any is missing.
ensure_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  # policy-rc.d-less hosts would start the distribution's own nginx and PostgreSQL: the stack
  # runs its own, so keep the packages' services from starting during the install.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  RUNLEVEL=1 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 </dev/null
}

# swift_build ARGS...: `swift build ARGS` in a fixed environment. SwiftPM keys its cache of
# compiled package manifests on the whole environment, so a build run with another RUN_DIR or
# HTTP_PORT (every test of scripts/run has its own) would compile every manifest again, seconds
# of CPU for a build that is up to date.
swift_build() { env -i PATH="$PATH" HOME="${HOME:-/root}" ${TMPDIR:+TMPDIR="$TMPDIR"} swift build "$@"; }

# The newest installed PostgreSQL server's bin folder.
pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/postgres" ] || die "no PostgreSQL server found under /usr/lib/postgresql"
  printf '%s\n' "$dir"
}

# Runs a command as the user who owns the cluster: postgres when this script runs as root
# (initdb and postgres refuse root), else the current user.
as_cluster_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Makes sure a folder on RUN_DIR's path can be traversed by the cluster owner and by nginx.
check_reachable() {
  local dir=$1
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir"; then
    die "$dir is not reachable by the postgres user; choose a RUN_DIR outside private folders (e.g. RUN_DIR=/tmp/articles)"
  fi
}

# What the workers' change feed needs (logical decoding, a replication connection and a
# temporary slot per worker, the tests' many workers included), and a bound on the WAL a slot
# that is no longer read may keep.
CLUSTER_SETTINGS="-c wal_level=logical -c max_wal_senders=64 -c max_replication_slots=64 -c max_slot_wal_keep_size=1GB"

# cluster_hba: who may connect to a cluster of the project's own, over its unix socket (trust:
# the socket's folder is reachable by the cluster owner and root only, cluster_start). No physical replication connection for the worker's
# roles: articles_feed has the REPLICATION attribute for the change feed's logical decoding
# (whose connections match lines by database name, so "all" lets it in), and with a physical
# one it could copy the whole cluster (pg_basebackup).
cluster_hba() {
  printf '%s\n' \
    'local   replication  articles_app,articles_feed  reject' \
    'local   replication  all                         trust' \
    'local   all          all                         trust'
}

# cluster_start DIR: creates (first time) and starts a UTF-8 cluster with its data in DIR/pgdata
# and its unix socket in DIR/pg (no TCP), and a database named articles. Sets PGHOST, PGPORT.
# pg_hba.conf is cluster_hba's, also in a cluster an older checkout made.
cluster_start() {
  local dir=$1 bindir
  bindir=$(pg_bindir)
  export PGHOST="$dir/pg" PGPORT=5432
  mkdir -p "$dir/pgdata" "$dir/pg"
  touch "$dir/postgres.log"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir/pgdata" "$dir/pg" "$dir/postgres.log"
    chmod 700 "$dir/pgdata"
  fi
  # The socket's folder is the cluster owner's alone (and root's): pg_hba.conf trusts whoever
  # reaches the socket, so no other local account may.
  chmod 700 "$dir/pg"
  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    log "creating the PostgreSQL cluster in $dir/pgdata"
    as_cluster_owner "$bindir/initdb" -D "$dir/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=reject >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  cluster_hba | as_cluster_owner tee "$dir/pgdata/pg_hba.conf" >/dev/null
  if as_cluster_owner "$bindir/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
    as_cluster_owner "$bindir/pg_ctl" -D "$dir/pgdata" reload >/dev/null
  else
    as_cluster_owner "$bindir/pg_ctl" -D "$dir/pgdata" -w -t 60 -l "$dir/postgres.log" \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir/pg' -c port=$PGPORT $CLUSTER_SETTINGS" start >/dev/null \
      || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  if ! psql -X -q -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'articles'" | grep -q 1; then
    psql -X -q -U postgres -d postgres -c "CREATE DATABASE articles" >/dev/null
  fi
}

# cluster_stop DIR: stops the cluster and waits for it to exit.
cluster_stop() {
  local dir=$1
  [ -f "$dir/pgdata/postmaster.pid" ] || return 0
  as_cluster_owner "$(pg_bindir)/pg_ctl" -D "$dir/pgdata" -w -t 60 -m fast stop >/dev/null 2>&1 || true
}

# database_url DIR USER: the URI of the articles database in DIR's cluster as USER (postgres,
# the administrator; articles_app, the worker; articles_feed, its change feed).
database_url() { printf 'postgresql:///articles?host=%s&port=%s&user=%s\n' "$1/pg" "${PGPORT:-5432}" "$2"; }

# make_local_keys DIR: a 2048-bit RSA signing key (DIR/signing-key.pem) and the JWKS that
# publishes its public half (DIR/jwks.json), standing in for a Cognito user pool's keys. The kid
# is the key's RFC 7638 thumbprint in standard base64, shaped like Cognito's kids.
make_local_keys() {
  local dir=$1
  [ -f "$dir/signing-key.pem" ] && [ -f "$dir/jwks.json" ] && return 0
  mkdir -p "$dir"
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/signing-key.pem" 2>/dev/null)
  local modulus
  modulus=$(openssl rsa -in "$dir/signing-key.pem" -noout -modulus | sed 's/^Modulus=//')
  python3 - "$modulus" >"$dir/jwks.json" <<'PY'
import base64, hashlib, json, sys
n = bytes.fromhex(sys.argv[1])
b64url = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
public = {"e": "AQAB", "kty": "RSA", "n": b64url(n)}
thumbprint = hashlib.sha256(json.dumps(public, separators=(",", ":"), sort_keys=True).encode()).digest()
key = {"alg": "RS256", "kid": base64.b64encode(thumbprint).decode(), "use": "sig", **public}
print(json.dumps({"keys": [key]}, indent=2))
PY
}
