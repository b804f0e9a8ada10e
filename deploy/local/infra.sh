#!/usr/bin/env bash
# Docker-free local infrastructure for `make run` and the tests.
#
# Starts, on loopback only, the three backing services every process needs:
#
#   PostgreSQL  127.0.0.1:${PG_PORT:-55432}     one cluster; one database + one role per service
#   Redis       127.0.0.1:${REDIS_PORT:-56379}
#   Kafka       127.0.0.1:${KAFKA_PORT:-9092}    KRaft mode, one combined broker + controller
#               (controller listener on 127.0.0.1:${KAFKA_CONTROLLER_PORT:-9093}, and a
#               SASL/PLAIN client listener on 127.0.0.1:${KAFKA_SASL_PORT:-9094}, user msa)
#
# They are installed from Debian packages (postgresql, redis-server, a JDK and
# maven) and Maven Central (the Kafka jars) when missing. All data and logs live
# under <repo>/.local/, which git ignores.
#
# Usage: deploy/local/infra.sh up|down|status|reset
#        deploy/local/infra.sh stop|start|restart postgres|redis|kafka
#        deploy/local/infra.sh zipkin-up|zipkin-down|zipkin-status
#        deploy/local/infra.sh prometheus-install|prometheus-up|prometheus-down|prometheus-status
#        deploy/local/infra.sh observe-up|observe-down|observe-status
#   up       install what is missing, start everything, wait until each is ready
#   down     stop everything gracefully (fine when already stopped)
#   status   print up/down for each; exit 0 only when all are up (the lines of
#            observe-status follow, for information: they do not change the exit code)
#   reset    down, then delete the data (keeps the downloaded Kafka jars)
#   stop, start, restart COMPONENT
#            the same for one server only (start also installs it if missing); the fault
#            suite (tests/chaos) uses them to take one server away under load
#   zipkin-up, zipkin-down, zipkin-status
#            the trace UI, apart from `up` (only `make observe` and the trace tests need it):
#            Zipkin on 127.0.0.1:${ZIPKIN_PORT:-9411}, in-memory storage (a restart forgets
#            every trace), its executable jar fetched once from Maven Central as listed in
#            deploy/local/zipkin/pom.xml; logs under .local/zipkin
#   prometheus-install, prometheus-up, prometheus-down, prometheus-status
#            the metrics backend of `make observe` (docs/observability.md): Debian's
#            prometheus on 127.0.0.1:${PROMETHEUS_PORT:-9090}, data under .local/prometheus,
#            scraping the processes deploy/local/run.py starts (their list comes from run.py)
#   observe-up, observe-down, observe-status
#            Zipkin and Prometheus together (`make observe`, `make observe-down`); the status
#            also says whether the observe switch (RUN_PID_DIR/observe.env, default
#            .local/run, written by deploy/local/run.py observe on) is on; exit 0 only when
#            both backends are up
#
# A second, independent instance (the fault suite's) runs beside the default one when
# these are set: MSA_LOCAL_DIR (its data and logs, default <repo>/.local), PG_PORT,
# REDIS_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SASL_PORT and ZIPKIN_PORT. The
# Kafka jars stay shared in MSA_KAFKA_LIBS (default <repo>/.local/kafka/libs), the Zipkin
# jar in MSA_ZIPKIN_LIBS (default <repo>/.local/zipkin/lib).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
LOCAL="${MSA_LOCAL_DIR:-$ROOT/.local}"

PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-9094}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
ZIPKIN_PORT="${ZIPKIN_PORT:-9411}"

PG_DIR="$LOCAL/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_SOCKET_DIR="$PG_DIR/run"
PG_SUPERUSER_PASSWORD="postgres"
# One database per service, each owned by a role of the same name
# (password "<name>-local-pw", see deploy/local/local.env).
SERVICE_DATABASES=(member board qna saga)

REDIS_DIR="$LOCAL/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"

KAFKA_DIR="$LOCAL/kafka"
# The jars are only read: every instance shares one copy.
KAFKA_LIBS="${MSA_KAFKA_LIBS:-$ROOT/.local/kafka/libs}"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
# Small JVM: the machine has few cores and the tests share them.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

# ----------------------------------------------------------------------------- helpers

log() { printf '[infra] %s\n' "$*"; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
now_ms() { date +%s%3N; }
since() { # since START_MS -> "1.23s"
    local ms=$(($(now_ms) - $1))
    printf '%d.%02ds' $((ms / 1000)) $((ms % 1000 / 10))
}

# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s.
wait_until() {
    local timeout="$1" what="$2"
    shift 2
    local deadline=$(($(now_ms) + timeout * 1000))
    until "$@" >/dev/null 2>&1; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            log "$what: not ready after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
}

# ------------------------------------------------------------------ Debian packages

APT_UPDATED=0

apt_get() {
    if is_root; then
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    elif command -v sudo >/dev/null; then
        sudo DEBIAN_FRONTEND=noninteractive apt-get "$@"
    else
        die "need root or sudo to run: apt-get $*"
    fi
}

# apt_install PACKAGE...: install with apt-get, refreshing the package lists only
# when there are none (fresh machine) or when the first attempt fails.
apt_install() {
    log "installing Debian packages: $*"
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    # Packages such as postgresql and redis-server start a system-wide service on
    # install. We run our own instances on our own ports, so forbid that
    # (invoke-rc.d honours policy-rc.d; exit code 101 = "action forbidden").
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if is_root && [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local status=0
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt_get update -q && APT_UPDATED=1
    fi
    apt_get install -y -q --no-install-recommends "$@" || status=$?
    if [ "$status" -ne 0 ] && [ "$APT_UPDATED" -eq 0 ]; then
        apt_get update -q && APT_UPDATED=1
        status=0
        apt_get install -y -q --no-install-recommends "$@" || status=$?
    fi
    if [ "$added_policy" -eq 1 ]; then rm -f "$policy"; fi
    [ "$status" -eq 0 ] || die "apt-get install $* failed"
}

# ------------------------------------------------------------------------ PostgreSQL

PG_BIN=""

find_pg_bin() {
    local initdb
    initdb="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 || true)"
    PG_BIN="${initdb%/initdb}"
}

ensure_postgres_installed() {
    find_pg_bin
    if [ -z "$PG_BIN" ]; then
        apt_install postgresql
        find_pg_bin
        [ -n "$PG_BIN" ] || die "PostgreSQL binaries not found after installing postgresql"
    fi
    # pg_trgm ships in the server package since PostgreSQL 15, in -contrib before.
    local version
    version="$(basename "$(dirname "$PG_BIN")")"
    if [ ! -f "/usr/share/postgresql/$version/extension/pg_trgm.control" ]; then
        apt_install "postgresql-contrib-$version" || apt_install postgresql-contrib
    fi
}

# initdb and the server refuse to run as root: as root we use the `postgres`
# system user; as anybody else we run them as ourselves.
as_pg_owner() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

prepare_postgres_dirs() {
    mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
    if is_root; then
        if ! id -u postgres >/dev/null 2>&1; then
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        chown -R postgres:postgres "$PG_DIR"
        runuser -u postgres -- test -w "$PG_DIR" ||
            die "user postgres cannot reach $PG_DIR (make the path to the repository traversable: chmod o+x)"
    fi
}

pg_running() {
    [ -f "$PG_DATA/PG_VERSION" ] && as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# psql as the superuser over TCP (scram-sha-256, like every other client).
pg_sql() { # pg_sql DATABASE [psql args...]
    local db="$1"
    shift
    PGPASSWORD="$PG_SUPERUSER_PASSWORD" PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "$@"
}

pg_ready() {
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && pg_sql postgres -tAc 'SELECT 1' >/dev/null
}

init_postgres_cluster() {
    log "postgres: creating the cluster in $PG_DATA"
    local pwfile="$PG_DIR/initdb.pw" locale_option=(--locale=C.UTF-8)
    printf '%s\n' "$PG_SUPERUSER_PASSWORD" >"$pwfile"
    if is_root; then chown postgres:postgres "$pwfile"; fi
    # C.UTF-8 keeps the collation simple and lets pg_trgm see Korean letters as letters.
    if ! locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale_option=(--no-locale); fi
    as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 \
        "${locale_option[@]}" >"$PG_DIR/initdb.log" 2>&1 ||
        { rm -f "$pwfile"; cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    # Development tuning: loopback only, enough connections for nine processes
    # plus the tests, and no durability work (a crash loses at most test data;
    # `infra.sh reset` starts over).
    as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# --- deploy/local/infra.sh ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_duration_statement = 1000
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

# Database per service: each service's role owns its database and may connect
# only to it. CONNECT is revoked from PUBLIC, so role `member` cannot open `board`;
# the superuser still can (it runs this script, and the tests create databases).
setup_databases() {
    local db
    for db in "${SERVICE_DATABASES[@]}"; do
        pg_sql postgres -v name="$db" -v password="$db-local-pw" <<'EOF'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
EOF
    done
    # Nor may the service roles open the maintenance database.
    pg_sql postgres -c 'REVOKE CONNECT ON DATABASE postgres FROM PUBLIC'
    # pg_trgm (trigram search) in every service database, and in template1 so
    # that databases the tests create have it too.
    for db in "${SERVICE_DATABASES[@]}" template1; do
        PGOPTIONS='-c client_min_messages=warning' pg_sql "$db" -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
    done
}

postgres_up() {
    local start
    start="$(now_ms)"
    ensure_postgres_installed
    prepare_postgres_dirs
    [ -f "$PG_DATA/PG_VERSION" ] || init_postgres_cluster
    if pg_running; then
        log "postgres: already running"
    else
        # pg_ctl detaches the server from our terminal (setsid), so Ctrl-C on
        # `make run` does not reach it.
        as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
            -o "-p $PG_PORT -k $PG_SOCKET_DIR" start >/dev/null 9>&- ||
            { tail -n 20 "$PG_LOG" >&2; die "postgres did not start (log: $PG_LOG)"; }
    fi
    wait_until 30 postgres pg_ready || { tail -n 20 "$PG_LOG" >&2; die "postgres is not ready"; }
    setup_databases
    log "postgres: ready on 127.0.0.1:$PG_PORT in $(since "$start")"
}

postgres_down() {
    find_pg_bin
    if [ -n "$PG_BIN" ] && pg_running; then
        as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
        log "postgres: stopped"
    else
        log "postgres: not running"
    fi
}

postgres_status() {
    find_pg_bin
    if [ -n "$PG_BIN" ] && pg_running && pg_ready; then
        echo "postgres  up    127.0.0.1:$PG_PORT  (data: ${PG_DATA#"$ROOT"/})"
    else
        echo "postgres  down  127.0.0.1:$PG_PORT"
        return 1
    fi
}

# ----------------------------------------------------------------------------- Redis

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = "PONG" ]; }

redis_pid() { # prints the pid of our redis-server, if it runs
    local pid
    pid="$(cat "$REDIS_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null &&
        echo "$pid"
}

redis_up() {
    local start
    start="$(now_ms)"
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server
    fi
    mkdir -p "$REDIS_DIR"
    if redis_pid >/dev/null; then
        log "redis: already running"
    else
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
            --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_DIR/redis.log" \
            --dir "$REDIS_DIR" --appendonly no </dev/null 9>&-
    fi
    wait_until 30 redis redis_ping ||
        { tail -n 20 "$REDIS_DIR/redis.log" >&2; die "redis is not ready (log: $REDIS_DIR/redis.log)"; }
    log "redis: ready on 127.0.0.1:$REDIS_PORT in $(since "$start")"
}

redis_down() {
    local pid
    if pid="$(redis_pid)"; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SHUTDOWN >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_until 30 "redis shutdown" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
        log "redis: stopped"
    else
        log "redis: not running"
    fi
    rm -f "$REDIS_PIDFILE"
}

redis_status() {
    if command -v redis-cli >/dev/null && redis_pid >/dev/null && redis_ping; then
        echo "redis     up    127.0.0.1:$REDIS_PORT"
    else
        echo "redis     down  127.0.0.1:$REDIS_PORT"
        return 1
    fi
}

# ----------------------------------------------------------------------------- Kafka

java_major_version() {
    command -v java >/dev/null || { echo 0; return; }
    java -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

ensure_kafka_installed() {
    # Kafka 4 needs Java 17 or newer; Debian's default JRE is 17 on bookworm.
    if [ "$(java_major_version)" -lt 17 ]; then apt_install default-jre-headless; fi
    command -v mvn >/dev/null || apt_install maven
    # The jars come from Maven Central, as listed in deploy/local/kafka/pom.xml.
    # They are fetched again only when that file changes.
    local stamp
    stamp="$(sha256sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)"
    if [ "$(cat "$KAFKA_LIBS/.pom.sha256" 2>/dev/null || true)" != "$stamp" ]; then
        log "kafka: fetching the jars from Maven Central into ${KAFKA_LIBS#"$ROOT"/}"
        rm -rf "$KAFKA_LIBS"
        mkdir -p "$KAFKA_LIBS"
        mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$KAFKA_LIBS" || die "mvn could not fetch the Kafka jars"
        echo "$stamp" >"$KAFKA_LIBS/.pom.sha256"
    fi
}

# The java command line shared by the storage tool and the broker.
kafka_java_command() { # fills the array KAFKA_JAVA
    # shellcheck disable=SC2206  # the option strings are meant to split into words
    KAFKA_JAVA=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS
        -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties"
        -cp "$KAFKA_LIBS/*")
}

kafka_pid() { # prints the pid of our broker JVM, if it runs
    local pid
    pid="$(cat "$KAFKA_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q kafka.Kafka "/proc/$pid/cmdline" 2>/dev/null &&
        echo "$pid"
}

kafka_ready() { python3 "$HERE/kafka_probe.py" "127.0.0.1:$KAFKA_PORT"; }

# The committed server.properties plus this machine's ports and data directory
# (java.util.Properties keeps the last value of a repeated key).
render_kafka_config() {
    {
        cat "$HERE/kafka/server.properties"
        echo
        echo "# --- overrides written by deploy/local/infra.sh ---"
        echo "listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
        echo "controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT"
        echo "log.dirs=$KAFKA_DATA"
    } >"$KAFKA_CONFIG"
}

# KRaft storage is formatted once, with a cluster id, before the first start.
format_kafka_storage() {
    [ -f "$KAFKA_DATA/meta.properties" ] && return 0
    local cluster_id
    # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
    # One that starts with "-" would be read as an option by the storage tool: draw again.
    cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    log "kafka: formatting KRaft storage (cluster id $cluster_id)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$KAFKA_CONFIG" \
        --ignore-formatted >"$KAFKA_LOGS/storage-format.log" 2>&1 ||
        { cat "$KAFKA_LOGS/storage-format.log" >&2; die "kafka storage format failed"; }
}

kafka_up() {
    local start pid
    start="$(now_ms)"
    ensure_kafka_installed
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    kafka_java_command
    render_kafka_config
    format_kafka_storage
    kafka_finish_stop
    if kafka_pid >/dev/null; then
        log "kafka: already running"
    else
        # In the background, in a session of its own (setsid) so that Ctrl-C on
        # `make run` does not reach it; setsid execs java, so $! is the JVM.
        setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONFIG" </dev/null >"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$KAFKA_PIDFILE"
    fi
    local deadline=$(($(now_ms) + 120000))
    until kafka_ready >/dev/null 2>&1; do
        if ! kafka_pid >/dev/null; then
            tail -n 30 "$KAFKA_LOGS/kafka.out" "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
            die "kafka exited during startup (logs: ${KAFKA_LOGS#"$ROOT"/})"
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "kafka is not ready after 120s (logs: $KAFKA_LOGS)"
        sleep 0.25
    done
    log "kafka: ready on 127.0.0.1:$KAFKA_PORT in $(since "$start")"
}

# Written by a stop before it sends SIGTERM, removed once the broker has exited: when
# it is still there, the broker in the pid file is shutting down, not running.
KAFKA_STOPPING="$KAFKA_DIR/kafka.stopping"

# Waits up to 60s for the broker $1 to end its controlled shutdown, then kills it.
kafka_await_exit() {
    local pid="$1"
    if ! wait_until 60 "kafka shutdown" bash -c "! kill -0 $pid"; then
        log "kafka: still running after 60s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 10 "kafka exit" bash -c "! kill -0 $pid" || true
    fi
}

kafka_down() {
    local pid
    if pid="$(kafka_pid)"; then
        echo "$pid" >"$KAFKA_STOPPING"
        # SIGTERM = controlled shutdown: the broker flushes and closes its logs.
        kill -TERM "$pid"
        kafka_await_exit "$pid"
        log "kafka: stopped"
    else
        log "kafka: not running"
    fi
    rm -f "$KAFKA_PIDFILE" "$KAFKA_STOPPING"
}

# A stop cut short (its infra.sh killed half-way, e.g. by a Ctrl-C) leaves the broker in
# its controlled shutdown, its pid file in place: that broker is about to exit, not
# running. Wait for the end of the stop it began, so that a start starts a new broker.
kafka_finish_stop() {
    local pid
    [ -f "$KAFKA_STOPPING" ] || return 0
    if pid="$(kafka_pid)"; then
        log "kafka: still stopping (pid $pid), waiting for it to exit before starting"
        kafka_await_exit "$pid"
    fi
    rm -f "$KAFKA_PIDFILE" "$KAFKA_STOPPING"
}

kafka_status() {
    if kafka_pid >/dev/null && kafka_ready >/dev/null 2>&1; then
        echo "kafka     up    127.0.0.1:$KAFKA_PORT  (KRaft, pid $(kafka_pid))"
    else
        echo "kafka     down  127.0.0.1:$KAFKA_PORT"
        return 1
    fi
}

# ------------------------------------------------------------------------ Prometheus
#
# Debian's package (2.42, web UI built in; it brings promtool too). Its own system service
# never runs: apt_install forbids service starts as root (policy-rc.d), and on a systemd
# machine the unit it enables (or started, through sudo) is disabled and stopped, since we run
# our own `prometheus` with our config, data and loopback port.

PROM_DIR="$LOCAL/prometheus"
PROM_CONFIG="$PROM_DIR/prometheus.yml"
PROM_PIDFILE="$PROM_DIR/prometheus.pid"
PROM_LOG="$PROM_DIR/prometheus.log"
PROM_URL="http://127.0.0.1:$PROMETHEUS_PORT"

ensure_prometheus_installed() {
    if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
        apt_install prometheus
        command -v prometheus >/dev/null || die "prometheus not found after installing the package"
    fi
    prometheus_disable_system_service
}

# The package enables its unit for the next boot (and, installed through sudo on a systemd
# machine, may have started it): it would hold port 9090 and scrape nothing of ours.
prometheus_disable_system_service() {
    command -v systemctl >/dev/null || return 0
    local root=()
    is_root || root=(sudo)
    if systemctl is-enabled --quiet prometheus 2>/dev/null; then
        log "prometheus: disabling the package's system service (we run our own)"
        "${root[@]}" systemctl disable --quiet prometheus 2>/dev/null || true
    fi
    if systemctl is-active --quiet prometheus 2>/dev/null; then
        log "prometheus: stopping the package's system service"
        "${root[@]}" systemctl stop prometheus || true
    fi
}

prometheus_install() { ensure_prometheus_installed; }

prometheus_pid() { # prints the pid of our prometheus, if it runs
    local pid
    pid="$(cat "$PROM_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q prometheus "/proc/$pid/cmdline" 2>/dev/null &&
        echo "$pid"
}

prometheus_ready() { curl -fs -m 2 "$PROM_URL/-/ready" >/dev/null; }

# The scrape targets are the processes run.py starts (RUN_API_REPLICAS, RUN_PORT_OFFSET from
# the environment or local.env): one list, never a second one kept by hand. run.py needs
# only the standard library, so any python3 will do before `make sync`.
render_prometheus_config() {
    local python="$ROOT/.venv/bin/python"
    [ -x "$python" ] || python="python3"
    "$python" "$HERE/run.py" prometheus-config >"$PROM_CONFIG.tmp" ||
        die "deploy/local/run.py prometheus-config failed"
    mv "$PROM_CONFIG.tmp" "$PROM_CONFIG"
    promtool check config "$PROM_CONFIG" >"$PROM_DIR/check.log" 2>&1 ||
        { cat "$PROM_DIR/check.log" >&2; die "promtool check config $PROM_CONFIG failed"; }
}

prometheus_up() {
    local start pid
    start="$(now_ms)"
    ensure_prometheus_installed
    mkdir -p "$PROM_DIR/data"
    render_prometheus_config
    if prometheus_pid >/dev/null; then
        # Already running: it reads the new targets and rules without a restart.
        curl -fsS -m 5 -X POST "$PROM_URL/-/reload" >/dev/null || die "prometheus did not reload $PROM_CONFIG"
        log "prometheus: already running, configuration reloaded"
    else
        # A session of its own (setsid execs prometheus, so $! is its pid): Ctrl-C on
        # `make run` does not reach it.
        setsid prometheus --config.file="$PROM_CONFIG" --storage.tsdb.path="$PROM_DIR/data" \
            --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
            --web.enable-lifecycle </dev/null >"$PROM_LOG" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PROM_PIDFILE"
    fi
    local deadline=$(($(now_ms) + 60000))
    until prometheus_ready; do
        if ! prometheus_pid >/dev/null; then
            tail -n 20 "$PROM_LOG" >&2 || true
            die "prometheus exited during startup (log: $PROM_LOG)"
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "prometheus is not ready after 60s (log: $PROM_LOG)"
        sleep 0.2
    done
    log "prometheus: ready on $PROM_URL in $(since "$start")"
}

prometheus_down() {
    local pid
    if pid="$(prometheus_pid)"; then
        # SIGTERM: it finishes the running queries and closes its storage cleanly.
        kill -TERM "$pid"
        wait_until 30 "prometheus shutdown" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
        log "prometheus: stopped"
    else
        log "prometheus: not running"
    fi
    rm -f "$PROM_PIDFILE"
}

prometheus_status() {
    if prometheus_pid >/dev/null && prometheus_ready; then
        echo "prometheus up    $PROM_URL  (data: ${PROM_DIR#"$ROOT"/})"
    else
        echo "prometheus down  $PROM_URL"
        return 1
    fi
}

# ---------------------------------------------------------------------------- Zipkin

ZIPKIN_DIR="$LOCAL/zipkin"
# The jar is only read: every instance shares one copy.
ZIPKIN_LIBS="${MSA_ZIPKIN_LIBS:-$ROOT/.local/zipkin/lib}"
ZIPKIN_LOG="$ZIPKIN_DIR/zipkin.log"
ZIPKIN_PIDFILE="$ZIPKIN_DIR/zipkin.pid"
# In-memory storage keeps at most this many spans (the oldest traces go first); 512 MB of
# heap holds them with room to spare.
ZIPKIN_MAX_SPANS="${ZIPKIN_MAX_SPANS:-100000}"
ZIPKIN_JAVA_OPTS="${ZIPKIN_JAVA_OPTS:--Xms64m -Xmx512m -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

zipkin_jar() { compgen -G "$ZIPKIN_LIBS/zipkin-server-*-exec.jar" | head -n 1; }

ensure_zipkin_installed() {
    # Zipkin 3 needs Java 17 or newer, as Kafka does.
    if [ "$(java_major_version)" -lt 17 ]; then apt_install default-jre-headless; fi
    command -v mvn >/dev/null || apt_install maven
    # Fetched again only when deploy/local/zipkin/pom.xml changes (a new version).
    local stamp
    stamp="$(sha256sum "$HERE/zipkin/pom.xml" | cut -d' ' -f1)"
    if [ "$(cat "$ZIPKIN_LIBS/.pom.sha256" 2>/dev/null || true)" != "$stamp" ] || [ -z "$(zipkin_jar)" ]; then
        log "zipkin: fetching the server jar (about 130 MB) from Maven Central into ${ZIPKIN_LIBS#"$ROOT"/}"
        rm -rf "$ZIPKIN_LIBS"
        mkdir -p "$ZIPKIN_LIBS"
        mvn -q -B -Dstyle.color=never -f "$HERE/zipkin/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$ZIPKIN_LIBS" || die "mvn could not fetch the Zipkin jar"
        echo "$stamp" >"$ZIPKIN_LIBS/.pom.sha256"
    fi
}

zipkin_pid() { # prints the pid of our Zipkin JVM, if it runs
    local pid
    pid="$(cat "$ZIPKIN_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q zipkin-server "/proc/$pid/cmdline" 2>/dev/null &&
        echo "$pid"
}

zipkin_ready() {
    python3 - "$ZIPKIN_PORT" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

zipkin_up() {
    local start pid jar
    start="$(now_ms)"
    ensure_zipkin_installed
    jar="$(zipkin_jar)"
    mkdir -p "$ZIPKIN_DIR"
    if zipkin_pid >/dev/null; then
        log "zipkin: already running"
    else
        # Armeria serves Zipkin; its list of ports replaces server.port, and an entry with an
        # ip binds that address only (the whole entry is given: a partial one loses the port).
        # setsid: a session of its own, so that Ctrl-C on `make run` does not reach it.
        # shellcheck disable=SC2086  # the option string is meant to split into words
        STORAGE_TYPE=mem setsid java $ZIPKIN_JAVA_OPTS -jar "$jar" \
            --armeria.ports[0].ip=127.0.0.1 --armeria.ports[0].port="$ZIPKIN_PORT" \
            --armeria.ports[0].protocols[0]=http \
            --zipkin.storage.mem.max-spans="$ZIPKIN_MAX_SPANS" \
            </dev/null >"$ZIPKIN_LOG" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$ZIPKIN_PIDFILE"
    fi
    local deadline=$(($(now_ms) + 180000))
    until zipkin_ready >/dev/null 2>&1; do
        if ! zipkin_pid >/dev/null; then
            tail -n 30 "$ZIPKIN_LOG" >&2 2>/dev/null || true
            die "zipkin exited during startup (log: ${ZIPKIN_LOG#"$ROOT"/})"
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "zipkin is not ready after 180s (log: $ZIPKIN_LOG)"
        sleep 0.25
    done
    log "zipkin: ready on http://127.0.0.1:$ZIPKIN_PORT in $(since "$start")"
}

zipkin_down() {
    local pid
    if pid="$(zipkin_pid)"; then
        # SIGTERM: Spring closes the server (in-memory traces are dropped, nothing to flush).
        kill -TERM "$pid"
        if ! wait_until 30 "zipkin shutdown" bash -c "! kill -0 $pid"; then
            log "zipkin: still running after 30s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "zipkin: stopped"
    else
        log "zipkin: not running"
    fi
    rm -f "$ZIPKIN_PIDFILE"
}

zipkin_status() {
    if zipkin_pid >/dev/null && zipkin_ready >/dev/null 2>&1; then
        echo "zipkin    up    http://127.0.0.1:$ZIPKIN_PORT  (pid $(zipkin_pid))"
    else
        echo "zipkin    down  127.0.0.1:$ZIPKIN_PORT"
        return 1
    fi
}

# `make observe`: the trace backend (Zipkin) and the metrics backend side by side.
observe_up() {
    local start
    start="$(now_ms)"
    zipkin_up
    prometheus_up
    log "observe: Zipkin and Prometheus up in $(since "$start")"
}

observe_down() {
    zipkin_down
    prometheus_down
}

observe_status() {
    local down=0 pid_dir="${RUN_PID_DIR:-.local/run}"
    case "$pid_dir" in /*) ;; *) pid_dir="$ROOT/$pid_dir" ;; esac
    zipkin_status || down=1
    prometheus_status || down=1
    if [ -f "$pid_dir/observe.env" ]; then
        echo "switch    on    ${pid_dir#"$ROOT"/}/observe.env: the processes make run (re)starts export their traces while Zipkin answers"
    else
        echo "switch    off   (no ${pid_dir#"$ROOT"/}/observe.env: no process exports traces)"
    fi
    return "$down"
}

# ---------------------------------------------------------------------- subcommands

cmd_up() {
    local start
    start="$(now_ms)"
    postgres_up
    redis_up
    kafka_up
    log "all up in $(since "$start")"
}

cmd_down() {
    # Reverse order of `up`.
    kafka_down
    redis_down
    postgres_down
}

cmd_status() {
    local down=0
    postgres_status || down=1
    redis_status || down=1
    kafka_status || down=1
    # `make observe`'s backends outlive `make run`: say whether they run, whatever the answer.
    observe_status || true
    return "$down"
}

cmd_reset() {
    cmd_down
    log "deleting the data under ${LOCAL#"$ROOT"/} (keeping the Kafka jars)"
    rm -rf "$PG_DIR" "$REDIS_DIR" "$KAFKA_DATA" "$KAFKA_LOGS" "$KAFKA_CONFIG" "$KAFKA_PIDFILE"
}

# One server: stop, start or restart COMPONENT (postgres, redis or kafka).
cmd_stop() { "$1_down"; }
cmd_start() { "$1_up"; }
cmd_restart() {
    "$1_down"
    "$1_up"
}

cmd_zipkin-up() { zipkin_up; }
cmd_zipkin-down() { zipkin_down; }
cmd_zipkin-status() { zipkin_status; }

usage() {
    echo "usage: $0 up|down|status|reset" >&2
    echo "       $0 stop|start|restart postgres|redis|kafka" >&2
    echo "       $0 prometheus-install|prometheus-up|prometheus-down|prometheus-status" >&2
    echo "       $0 observe-up|observe-down|observe-status" >&2
    echo "       $0 zipkin-up|zipkin-down|zipkin-status" >&2
    exit 2
}

main() {
    local command="${1:-}" component="${2:-}"
    case "$command" in
    prometheus-install | prometheus-up | prometheus-down | prometheus-status | observe-up | observe-down | observe-status)
        [ $# -eq 1 ] || usage
        command="${command//-/_}"
        ;;
    up | down | status | reset | zipkin-up | zipkin-down | zipkin-status) [ $# -eq 1 ] || usage ;;
    stop | start | restart)
        [ $# -eq 2 ] || usage
        case "$component" in
        postgres | redis | kafka) ;;
        *) usage ;;
        esac
        ;;
    *) usage ;;
    esac
    mkdir -p "$LOCAL"
    cd "$ROOT"
    # One infra.sh at a time (e.g. two test runs calling `up` together). The
    # servers we start must not inherit this descriptor (hence `9>&-` there),
    # or they would hold the lock for as long as they run.
    exec 9>"$LOCAL/infra.lock"
    flock 9
    case "$command" in
    prometheus_* | observe_*) "$command" ;; # the functions above, by name
    *) if [ -n "$component" ]; then "cmd_$command" "$component"; else "cmd_$command"; fi ;;
    esac
}

main "$@"
