#!/usr/bin/env bash
# Install (if missing) and start the real services PulseBridge's tests use, idempotently:
#   1. Mosquitto broker on 127.0.0.1:1883
#   2. PostgreSQL 15, cluster 15/main
#   3. TimescaleDB for PostgreSQL 15, built from Debian trixie's source package
#      (TimescaleDB is not packaged for bookworm), preloaded in the cluster
#   4. PostgreSQL role `root` (SUPERUSER LOGIN) and database `pulsebridge` owned by it
#
# Runs as root on Debian bookworm. Takes a few seconds when everything is already there;
# the first TimescaleDB build takes about a minute (downloads + ~20 s compile).
# Heavy output (apt, compiler) goes to a log file that is shown only on failure.
#
# Environment overrides (all optional):
#   PULSEBRIDGE_DB           application database           (default: pulsebridge)
#   PULSEBRIDGE_DB_ROLE      role owning it, = OS user the tests run as (default: root)
#   SETUP_WAIT_SECONDS       how long to wait for a service to answer (default: 30)
set -Eeuo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

readonly PG_VERSION=15
readonly PG_CLUSTER=main
readonly PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
readonly PG_CONF_DIR="/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}"
readonly PG_SOCKET_DIR=/var/run/postgresql
readonly MQTT_HOST=127.0.0.1
readonly MQTT_PORT=1883
readonly MOSQUITTO_CONF=/etc/mosquitto/mosquitto.conf
readonly TSDB_SOURCE_SUITE=trixie
readonly APP_DB="${PULSEBRIDGE_DB:-pulsebridge}"
readonly APP_ROLE="${PULSEBRIDGE_DB_ROLE:-root}"
readonly WAIT_SECONDS="${SETUP_WAIT_SECONDS:-30}"
readonly SCRATCH_DB=pulsebridge_setup_check

LOG=""
WORK_DIR=""
APT_UPDATED=0
PG_PORT=5432

log() { printf 'setup: %s\n' "$*"; }

die() {
    if [[ -n "$LOG" && -s "$LOG" ]]; then
        printf 'setup: ---- last lines of %s ----\n' "$LOG" >&2
        tail -n 25 "$LOG" >&2 || true
        printf 'setup: ----\n' >&2
    fi
    printf 'setup: FAILED: %s\n' "$*" >&2
    exit 1
}

on_err() {
    local rc=$? line=$1 cmd=$2
    # In a subshell (e.g. "$(...)"), just pass the status up: the parent reports it once.
    if [[ $BASHPID != "$$" ]]; then exit "$rc"; fi
    trap - ERR
    die "command failed (exit ${rc}) at line ${line}: ${cmd}"
}

cleanup() {
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        rm -rf -- "$WORK_DIR"
    fi
    # Keep the log only when the run failed.
    if [[ "${1:-0}" == 0 && -n "$LOG" && -f "$LOG" ]]; then
        rm -f -- "$LOG"
    fi
}

trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR
trap 'cleanup "$?"' EXIT

# Run a noisy command with its output in the log; on failure show the log's tail and stop.
# run_logged WHAT CMD...   |   run_logged_in DIR WHAT CMD...  (runs CMD in DIR)
run_logged() { run_logged_in . "$@"; }

run_logged_in() {
    local dir=$1 what=$2
    shift 2
    printf '\n### %s (in %s): %s\n' "$what" "$dir" "$*" >>"$LOG"
    # 9>&-: daemons started here (postmaster, mosquitto, apt postinsts) must not inherit the
    # run lock's descriptor, or they would hold the lock for their whole life.
    if ! (cd "$dir" && "$@") 9>&- >>"$LOG" 2>&1; then
        die "$what failed (command: $*)"
    fi
}

# ------------------------------------------------------------------ preconditions
[[ $(id -u) == 0 ]] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian only"

LOG=$(mktemp "${TMPDIR:-/tmp}/pulsebridge-setup.XXXXXX.log")

# One run at a time (two concurrent apt/dpkg or builds would trip over each other).
LOCK_DIR=/run/lock
[[ -d $LOCK_DIR && -w $LOCK_DIR ]] || LOCK_DIR=/tmp
exec 9>"$LOCK_DIR/pulsebridge-setup.lock"
flock -w 900 9 || die "another setup-services.sh run holds the lock for more than 15 minutes"

# ------------------------------------------------------------------ apt helpers
apt_update_once() {
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        run_logged "apt-get update" apt-get -q -o DPkg::Lock::Timeout=300 update
        APT_UPDATED=1
    fi
}

apt_install() {
    apt_update_once
    log "installing $*"
    run_logged "apt-get install $*" apt-get -q -y -o DPkg::Lock::Timeout=300 \
        --no-install-recommends install "$@"
}

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

# ------------------------------------------------------------------ network helpers
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_for_port() {
    local host=$1 port=$2 what=$3 i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        port_open "$host" "$port" && return 0
        sleep 0.2
    done
    die "$what did not answer on ${host}:${port} within ${WAIT_SECONDS}s"
}

# ------------------------------------------------------------------ 1. Mosquitto
setup_mosquitto() {
    if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
        apt_install mosquitto mosquitto-clients
    fi
    if port_open "$MQTT_HOST" "$MQTT_PORT"; then
        log "mosquitto: listening on ${MQTT_HOST}:${MQTT_PORT}"
        return
    fi
    [[ -f $MOSQUITTO_CONF ]] || die "mosquitto: $MOSQUITTO_CONF is missing"
    # Directories the packaged config points at (systemd's tmpfiles would make /run/mosquitto).
    local d
    for d in /run/mosquitto /var/log/mosquitto /var/lib/mosquitto; do
        mkdir -p "$d"
        if id mosquitto >/dev/null 2>&1; then chown mosquitto: "$d"; fi
    done
    log "mosquitto: starting (mosquitto -d -c $MOSQUITTO_CONF)"
    run_logged "start mosquitto" mosquitto -d -c "$MOSQUITTO_CONF"
    wait_for_port "$MQTT_HOST" "$MQTT_PORT" "mosquitto"
    log "mosquitto: listening on ${MQTT_HOST}:${MQTT_PORT}"
}

# ------------------------------------------------------------------ 2. PostgreSQL
pg_running() { pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

pg_wait_ready() {
    local i
    for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
        pg_isready -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -t 1 && return 0
        sleep 0.2
    done
    die "postgresql ${PG_VERSION}/${PG_CLUSTER} not ready on ${PG_SOCKET_DIR}:${PG_PORT} within ${WAIT_SECONDS}s (see /var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log)"
}

pg_start() {
    if ! pg_running; then
        log "postgresql: starting cluster ${PG_VERSION}/${PG_CLUSTER}"
        run_logged "start postgresql" pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
    fi
    pg_wait_ready
}

pg_restart() {
    log "postgresql: restarting cluster ${PG_VERSION}/${PG_CLUSTER} ($1)"
    run_logged "restart postgresql" pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart
    pg_wait_ready
}

# psql as the postgres superuser over the Unix socket (works with peer or trust auth).
# Usage: pg_sql [-d DB] SQL   -> prints unaligned tuples, stops on the first error.
pg_sql() {
    local db=postgres
    if [[ $1 == -d ]]; then db=$2; shift 2; fi
    (cd / && PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- psql -X -q -tA -v ON_ERROR_STOP=1 \
        -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d "$db" -c "$1")
}

setup_postgresql() {
    if [[ ! -x $PG_BIN/postgres ]] || ! command -v pg_ctlcluster >/dev/null; then
        apt_install "postgresql-${PG_VERSION}"
    fi
    if [[ ! -f $PG_CONF_DIR/postgresql.conf ]]; then
        log "postgresql: creating cluster ${PG_VERSION}/${PG_CLUSTER}"
        run_logged "pg_createcluster" pg_createcluster "$PG_VERSION" "$PG_CLUSTER"
    fi
    local port
    port=$(pg_lsclusters -h "$PG_VERSION" "$PG_CLUSTER" | awk '{print $3; exit}')
    [[ $port =~ ^[0-9]+$ ]] && PG_PORT=$port
    pg_start
    log "postgresql: ${PG_VERSION}/${PG_CLUSTER} ready on ${PG_SOCKET_DIR} port ${PG_PORT} ($(pkg_version "postgresql-${PG_VERSION}"))"
}

# ------------------------------------------------------------------ 3. TimescaleDB
pg_config_bin() {
    if [[ -x $PG_BIN/pg_config ]]; then echo "$PG_BIN/pg_config"; else return 1; fi
}

tsdb_installed() {
    local libdir sharedir
    libdir=$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/${PG_VERSION}/lib")
    sharedir=$("$PG_BIN/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/${PG_VERSION}")
    [[ -f $libdir/timescaledb.so && -f $sharedir/extension/timescaledb.control ]] &&
        compgen -G "$libdir/timescaledb-[0-9]*.so" >/dev/null
}

os_codename() {
    # shellcheck source=/dev/null
    (. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
}

# The machine's own Debian archive URI (never hard-coded), from deb822 or one-line sources.
debian_archive_uri() {
    local codename uri=""
    codename=$(os_codename)
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        uri=$(awk -v want="$codename" '
            function flush() {
                if (!done && enabled && types ~ /(^| )deb( |$)/ && uris != "" &&
                    (" " suites " ") ~ (" " want " ")) { split(uris, u, " "); print u[1]; done = 1 }
                types = ""; uris = ""; suites = ""; enabled = 1
            }
            BEGIN { enabled = 1 }
            /^[ \t]*$/          { flush(); next }
            /^[ \t]*#/          { next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "uris:"    { $1 = ""; sub(/^ +/, ""); uris = $0 }
            tolower($1) == "suites:"  { $1 = ""; sub(/^ +/, ""); suites = $0 }
            tolower($1) == "enabled:" { enabled = (tolower($2) != "no") }
            END { flush() }
        ' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z $uri && -f /etc/apt/sources.list ]]; then
        uri=$(awk -v want="$codename" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == want) { print $i; exit }
            }
        ' /etc/apt/sources.list)
    fi
    [[ -n $uri ]] || return 1
    printf '%s\n' "${uri%/}"
}

build_timescaledb() {
    local uri keyring="" pgc before after
    uri=$(debian_archive_uri) ||
        die "no Debian archive URI for $(os_codename) found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
    [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] &&
        keyring="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "

    # Build dependencies first: installing the dev package may upgrade postgresql-15 in place.
    before=$(pkg_version "postgresql-${PG_VERSION}")
    local deps=("postgresql-server-dev-${PG_VERSION}" cmake dpkg-dev build-essential xz-utils)
    local missing=() p
    for p in "${deps[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
    done
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
    after=$(pkg_version "postgresql-${PG_VERSION}")
    if [[ $before != "$after" ]]; then
        log "postgresql: postgresql-${PG_VERSION} was upgraded ${before} -> ${after}"
        pg_restart "binaries upgraded"
    fi
    pgc=$(pg_config_bin) || die "timescaledb: $PG_BIN/pg_config missing after installing build dependencies"

    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pulsebridge-timescaledb.XXXXXX")
    mkdir -p "$WORK_DIR/apt/lists/partial" "$WORK_DIR/src"
    printf 'deb-src %s%s %s main\n' "$keyring" "$uri" "$TSDB_SOURCE_SUITE" >"$WORK_DIR/apt/sources.list"
    # Private apt configuration: the system's sources, package lists and caches stay untouched.
    local apt_priv=(
        -o "Dir::Etc::SourceList=$WORK_DIR/apt/sources.list"
        -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$WORK_DIR/apt/lists"
        -o Dir::Cache::pkgcache=
        -o Dir::Cache::srcpkgcache=
        -o APT::Sandbox::User=root
    )
    log "timescaledb: fetching the source package from Debian ${TSDB_SOURCE_SUITE}"
    run_logged "apt-get update (private, ${TSDB_SOURCE_SUITE} sources)" apt-get -q "${apt_priv[@]}" update
    run_logged_in "$WORK_DIR/src" "apt-get source timescaledb" \
        apt-get -q "${apt_priv[@]}" source --download-only timescaledb
    local dsc
    dsc=$(compgen -G "$WORK_DIR/src/timescaledb_*.dsc" | head -n 1) ||
        die "timescaledb: apt-get source downloaded no .dsc"
    log "timescaledb: unpacking $(basename "$dsc")"
    run_logged "dpkg-source -x" dpkg-source -x "$dsc" "$WORK_DIR/src/timescaledb"

    log "timescaledb: building (Apache-2 edition, telemetry off) against $pgc"
    # Flags as platform.md + Debian's own debian/rules (telemetry off: no outbound calls).
    run_logged_in "$WORK_DIR/src/timescaledb" "timescaledb bootstrap" \
        env BUILD_FORCE_REMOVE=true ./bootstrap -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
        -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DPG_CONFIG="$pgc"
    run_logged "timescaledb make install" make -C "$WORK_DIR/src/timescaledb/build" -j"$(nproc)" install
    rm -rf -- "$WORK_DIR"
    WORK_DIR=""
    tsdb_installed || die "timescaledb: build finished but timescaledb*.so / control file not found"
}

# Split a shared_preload_libraries value into one name per line (quotes and blanks removed).
split_libs() { tr ',' '\n' <<<"$1" | sed -e 's/^[[:space:]"]*//' -e 's/[[:space:]"]*$//' | sed '/^$/d'; }

ensure_preload() {
    # Value as the config files (incl. postgresql.auto.conf) say now; last occurrence wins.
    # (No filter on pg_file_settings.error: a value that differs from the running one reads
    # "setting could not be applied" until the restart, and must still be kept.)
    local file_value running restart_reason="" libs=() lib sql
    file_value=$(pg_sql "SELECT setting FROM pg_file_settings
                          WHERE name = 'shared_preload_libraries'
                          ORDER BY seqno DESC LIMIT 1")
    if ! split_libs "$file_value" | grep -qx timescaledb; then
        mapfile -t libs < <(split_libs "$file_value")
        libs+=(timescaledb)
        sql=""
        for lib in "${libs[@]}"; do
            sql+="${sql:+, }'${lib//\'/\'\'}'"
        done
        log "postgresql: ALTER SYSTEM SET shared_preload_libraries = ${sql}"
        pg_sql "ALTER SYSTEM SET shared_preload_libraries = ${sql}" >/dev/null
        restart_reason="shared_preload_libraries changed"
    fi
    running=$(pg_sql "SHOW shared_preload_libraries")
    if [[ -z $restart_reason ]] && ! split_libs "$running" | grep -qx timescaledb; then
        restart_reason="timescaledb configured but not loaded yet"
    fi
    if [[ -n $restart_reason ]]; then
        pg_restart "$restart_reason"
        running=$(pg_sql "SHOW shared_preload_libraries")
        split_libs "$running" | grep -qx timescaledb ||
            die "postgresql: shared_preload_libraries is '${running}' after restart, without timescaledb"
    fi
    log "postgresql: shared_preload_libraries = '${running}'"
}

verify_timescaledb() {
    local version
    pg_sql "DROP DATABASE IF EXISTS ${SCRATCH_DB} WITH (FORCE)" >/dev/null
    pg_sql "CREATE DATABASE ${SCRATCH_DB}" >/dev/null
    version=$(pg_sql -d "$SCRATCH_DB" "SET client_min_messages = warning;
                                      CREATE EXTENSION IF NOT EXISTS timescaledb;
                                      SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") ||
        { pg_sql "DROP DATABASE IF EXISTS ${SCRATCH_DB} WITH (FORCE)" >/dev/null || true
          die "timescaledb: CREATE EXTENSION timescaledb failed in a scratch database"; }
    pg_sql "DROP DATABASE ${SCRATCH_DB} WITH (FORCE)" >/dev/null
    log "timescaledb: extension ${version} loads (checked in a scratch database)"
}

setup_timescaledb() {
    if tsdb_installed; then
        log "timescaledb: already installed for PostgreSQL ${PG_VERSION}"
    else
        log "timescaledb: not installed for PostgreSQL ${PG_VERSION}; building it from source"
        build_timescaledb
    fi
    ensure_preload
    verify_timescaledb
}

# ------------------------------------------------------------------ 4. role and database
setup_role_and_db() {
    local role_flags owner
    [[ $APP_ROLE =~ ^[a-z_][a-z0-9_]*$ && $APP_DB =~ ^[a-z_][a-z0-9_]*$ ]] ||
        die "role/database names must be plain lower-case identifiers (got '$APP_ROLE' / '$APP_DB')"
    role_flags=$(pg_sql "SELECT rolsuper::text || rolcanlogin::text FROM pg_roles WHERE rolname = '${APP_ROLE}'")
    if [[ -z $role_flags ]]; then
        log "postgresql: creating role ${APP_ROLE} (SUPERUSER LOGIN)"
        pg_sql "CREATE ROLE ${APP_ROLE} SUPERUSER LOGIN" >/dev/null
    elif [[ $role_flags != truetrue ]]; then
        log "postgresql: granting SUPERUSER LOGIN to role ${APP_ROLE}"
        pg_sql "ALTER ROLE ${APP_ROLE} SUPERUSER LOGIN" >/dev/null
    fi
    owner=$(pg_sql "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${APP_DB}'")
    if [[ -z $owner ]]; then
        log "postgresql: creating database ${APP_DB} owned by ${APP_ROLE}"
        pg_sql "CREATE DATABASE ${APP_DB} OWNER ${APP_ROLE}" >/dev/null
    elif [[ $owner != "$APP_ROLE" ]]; then
        log "postgresql: database ${APP_DB} owner ${owner} -> ${APP_ROLE}"
        pg_sql "ALTER DATABASE ${APP_DB} OWNER TO ${APP_ROLE}" >/dev/null
    fi
    # The tests connect as the invoking OS user over the socket: check exactly that path when
    # that user is the role (peer or trust auth).
    if [[ $APP_ROLE == "$(id -un)" ]]; then
        psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d "$APP_DB" \
            -c "SELECT 1" >/dev/null 2>>"$LOG" ||
            die "postgresql: cannot connect as OS user $(id -un) to database ${APP_DB} over ${PG_SOCKET_DIR}"
    fi
    log "postgresql: role ${APP_ROLE} (superuser) and database ${APP_DB} ready"
}

# ------------------------------------------------------------------ main
SECONDS=0
setup_mosquitto
setup_postgresql
setup_timescaledb
setup_role_and_db
log "all services ready in ${SECONDS}s"
