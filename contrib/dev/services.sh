# shellcheck shell=bash
# contrib/dev/services.sh: shell library (source it, do not run it) that owns the private
# PostgreSQL 15 cluster and Redis server used for development and benchmarks, the state
# folder they live in, and the environment file integrationsd is started with.
# Used by contrib/dev/run, contrib/dev/test and the benchmark scripts.
#
#   . contrib/dev/services.sh
#   svc_init                # paths and defaults; call once, after set -euo pipefail
#   svc_start               # PG + Redis up, database + demo user present, env file written
#   svc_env_load            # export the env file's variables into this shell
#   svc_stop_started        # stop only what this shell started (for exit traps)
#   svc_stop                # stop our PG + Redis whoever started them (leftovers too)
#
# State folder layout (default <checkout>/.state, override INTEGRATIONSD_STATE_DIR):
#   env              KEY=value lines (bash `set -a; .` and systemd EnvironmentFile both read it);
#                    secrets are generated once and kept; DATABASE_URL and REDIS_URL are
#                    rewritten on every start with the ports actually used
#   pg/              PostgreSQL data dir (or /var/tmp/integrationsd-<hash>/pg when the
#                    postgres user cannot reach .state, e.g. a checkout under /root)
#   pgdata           one line: the data dir actually in use
#   redis/           redis.pid, redis.log, port
#   demo.jwt         a token for the demo user (written by contrib/dev/run)
#   integrationsd.pid the service started by contrib/dev/run
#
# Settings (environment): INTEGRATIONSD_STATE_DIR, INTEGRATIONSD_PG_PORT (55432),
# INTEGRATIONSD_REDIS_PORT (56379), INTEGRATIONSD_PGBIN (/usr/lib/postgresql/15/bin).
# Each port is the first free one from its default upwards.

# The checkout root: two levels above this file, wherever the repository was cloned.
SVC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

svc_log() { printf '%s\n' "services: $*" >&2; }
svc_die() { printf '%s\n' "services: error: $*" >&2; exit 1; }

# Short, stable hash of the checkout path (names per-checkout folders under /var/tmp).
svc_hash() { printf '%s' "$SVC_ROOT" | sha256sum | cut -c1-10; }

svc_init() {
	SVC_STATE=${INTEGRATIONSD_STATE_DIR:-$SVC_ROOT/.state}
	SVC_PGBIN=${INTEGRATIONSD_PGBIN:-/usr/lib/postgresql/15/bin}
	SVC_VARTMP=/var/tmp/integrationsd-$(svc_hash)
	SVC_ENV_FILE=$SVC_STATE/env
	SVC_REDIS_DIR=$SVC_STATE/redis
	SVC_PG_STARTED=0
	SVC_REDIS_STARTED=0
	SVC_PG_PORT=
	SVC_REDIS_PORT=
	SVC_PGDATA=
	if [ -f "$SVC_STATE/pgdata" ]; then SVC_PGDATA=$(head -n1 "$SVC_STATE/pgdata"); fi
	case $SVC_PGDATA in "$SVC_STATE/pg" | "$SVC_VARTMP/pg") ;; *) SVC_PGDATA= ;; esac
}

svc_is_root() { [ "$(id -u)" = 0 ]; }

# Run a PostgreSQL server command as the postgres OS user when we are root (initdb and
# postgres refuse to run as root), from / so the postgres user never needs our cwd.
svc_as_pg() {
	if svc_is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
svc_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# First free port from $1 upwards, skipping $2 (the other service's port).
svc_pick_port() {
	local p=$1 avoid=${2:-} i
	for ((i = 0; i < 200; i++, p++)); do
		[ "$p" = "$avoid" ] && continue
		svc_port_busy "$p" || { echo "$p"; return 0; }
	done
	svc_die "no free port found from $1 upwards"
}

# True when process $1 exists and is not a zombie (a reparented server that exited stays a
# zombie until init reaps it, and kill -0 still succeeds on it).
svc_pid_alive() {
	local s
	[ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

svc_rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# ---- PostgreSQL -------------------------------------------------------------------------

# Choose the data dir: .state/pg if the postgres user can reach it, else /var/tmp/...
svc_pg_choose_datadir() {
	# SVC_PGDATA is only ever one of the two places this library creates (svc_init checks),
	# because a data dir without PG_VERSION is wiped below.
	if [ -n "$SVC_PGDATA" ] && [ -f "$SVC_PGDATA/PG_VERSION" ]; then return 0; fi
	SVC_PGDATA=$SVC_STATE/pg
	# shellcheck disable=SC2016 # $1 is expanded by the inner sh
	if svc_is_root && ! (cd / && runuser -u postgres -- /bin/sh -c 'cd "$1"' sh "$SVC_STATE") 2>/dev/null; then
		SVC_PGDATA=$SVC_VARTMP/pg
		svc_log "the postgres user cannot reach $SVC_STATE (a parent folder is private);"
		svc_log "PostgreSQL data goes to $SVC_PGDATA instead"
		mkdir -p "$SVC_VARTMP"
		chmod 755 "$SVC_VARTMP"
	fi
	printf '%s\n' "$SVC_PGDATA" >"$SVC_STATE/pgdata"
}

# Pid of the running postmaster of our data dir, or nothing.
svc_pg_pid() {
	local pid
	[ -n "$SVC_PGDATA" ] && [ -f "$SVC_PGDATA/postmaster.pid" ] || return 0
	pid=$(head -n1 "$SVC_PGDATA/postmaster.pid" 2>/dev/null) || return 0
	if svc_pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then echo "$pid"; fi
}

svc_pg_start() {
	local pid port
	[ -x "$SVC_PGBIN/initdb" ] || svc_die "$SVC_PGBIN/initdb not found: run contrib/dev/deps (package postgresql)"
	mkdir -p "$SVC_STATE"
	svc_pg_choose_datadir
	pid=$(svc_pg_pid)
	if [ -n "$pid" ]; then
		SVC_PG_PORT=$(sed -n 4p "$SVC_PGDATA/postmaster.pid")
		svc_log "PostgreSQL already running (pid $pid, port $SVC_PG_PORT)"
		return 0
	fi
	if [ ! -f "$SVC_PGDATA/PG_VERSION" ]; then
		rm -rf "$SVC_PGDATA"
		mkdir -p "$SVC_PGDATA"
		chmod 700 "$SVC_PGDATA"
		if svc_is_root; then chown postgres:postgres "$SVC_PGDATA"; fi
		svc_log "initdb $SVC_PGDATA"
		if ! svc_as_pg "$SVC_PGBIN/initdb" -D "$SVC_PGDATA" -U postgres -A trust -E UTF8 --locale=C \
			>"$SVC_STATE/initdb.log" 2>&1; then
			cat "$SVC_STATE/initdb.log" >&2
			svc_die "initdb failed"
		fi
		# Loopback TCP only; no Unix socket (its path length and folder are not our business).
		# shellcheck disable=SC2016 # $1 is expanded by the inner sh
		svc_as_pg /bin/sh -c 'cat >>"$1/postgresql.conf"' sh "$SVC_PGDATA" <<-'EOF'

		# contrib/dev/services.sh
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''
		EOF
	fi
	# The free-port probe can race with other programs (our default ports lie in Linux's
	# ephemeral range, so even an outgoing connection can hold one): on "Address already in
	# use" try the next port.
	local log=$SVC_PGDATA/server.log try=${INTEGRATIONSD_PG_PORT:-55432} attempt lines
	for ((attempt = 1; ; attempt++)); do
		port=$(svc_pick_port "$try" "$SVC_REDIS_PORT")
		lines=$({ wc -l <"$log"; } 2>/dev/null || echo 0)
		if svc_as_pg "$SVC_PGBIN/pg_ctl" -D "$SVC_PGDATA" -l "$log" -o "-p $port" \
			-w -t 60 start >"$SVC_STATE/pg_ctl.log" 2>&1; then
			break
		fi
		if [ "$attempt" -lt 10 ] && tail -n +"$((lines + 1))" "$log" 2>/dev/null | grep -q 'Address already in use'; then
			svc_log "port $port was taken meanwhile; trying the next one"
			try=$((port + 1))
			continue
		fi
		cat "$SVC_STATE/pg_ctl.log" >&2
		tail -n +"$((lines + 1))" "$log" | tail -n 30 >&2 2>/dev/null || true
		svc_die "PostgreSQL did not start (log: $log)"
	done
	SVC_PG_PORT=$port
	SVC_PG_STARTED=1
	svc_log "PostgreSQL 15 on 127.0.0.1:$SVC_PG_PORT (data $SVC_PGDATA)"
}

svc_pg_stop() {
	local pid i
	pid=$(svc_pg_pid)
	[ -n "$pid" ] || return 0
	if ! svc_as_pg "$SVC_PGBIN/pg_ctl" -D "$SVC_PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
		kill -QUIT "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do svc_pid_alive "$pid" || break; sleep 0.1; done
		if svc_pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	svc_log "PostgreSQL stopped (pid $pid)"
}

# ---- Redis ------------------------------------------------------------------------------

svc_redis_pid() {
	local pid
	[ -f "$SVC_REDIS_DIR/redis.pid" ] || return 0
	pid=$(head -n1 "$SVC_REDIS_DIR/redis.pid" 2>/dev/null) || return 0
	if svc_pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then echo "$pid"; fi
}

svc_redis_start() {
	local pid port i
	command -v redis-server >/dev/null || svc_die "redis-server not found: run contrib/dev/deps"
	mkdir -p "$SVC_REDIS_DIR"
	pid=$(svc_redis_pid)
	if [ -n "$pid" ]; then
		SVC_REDIS_PORT=$(cat "$SVC_REDIS_DIR/port")
		svc_log "Redis already running (pid $pid, port $SVC_REDIS_PORT)"
		return 0
	fi
	local log=$SVC_REDIS_DIR/redis.log try=${INTEGRATIONSD_REDIS_PORT:-56379} attempt lines up
	for ((attempt = 1; ; attempt++)); do
		rm -f "$SVC_REDIS_DIR/redis.pid"
		port=$(svc_pick_port "$try" "$SVC_PG_PORT")
		lines=$({ wc -l <"$log"; } 2>/dev/null || echo 0)
		redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
			--daemonize yes --pidfile "$SVC_REDIS_DIR/redis.pid" --dir "$SVC_REDIS_DIR" \
			--logfile "$log" </dev/null >/dev/null 2>&1 || true
		# Up when the server answering on the port is ours (the pid in our pidfile).
		up=0
		for ((i = 0; i < 100; i++)); do
			pid=$(svc_redis_pid)
			if [ -n "$pid" ] && [ "$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
				sed -n 's/^process_id:\([0-9]*\).*/\1/p')" = "$pid" ]; then
				up=1
				break
			fi
			# the daemon exited (bind failure, bad option): stop waiting
			if [ "$i" -ge 5 ] && [ -z "$pid" ]; then break; fi
			sleep 0.1
		done
		[ "$up" = 1 ] && break
		pid=$(svc_redis_pid)
		if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
		if [ "$attempt" -lt 10 ] && tail -n +"$((lines + 1))" "$log" 2>/dev/null | grep -q 'Address already in use'; then
			svc_log "port $port was taken meanwhile; trying the next one"
			try=$((port + 1))
			continue
		fi
		tail -n +"$((lines + 1))" "$log" 2>/dev/null | tail -n 20 >&2 || true
		svc_die "Redis did not start on port $port (log: $log)"
	done
	echo "$port" >"$SVC_REDIS_DIR/port"
	SVC_REDIS_PORT=$port
	SVC_REDIS_STARTED=1
	svc_log "Redis on 127.0.0.1:$SVC_REDIS_PORT (dir $SVC_REDIS_DIR)"
}

svc_redis_stop() {
	local pid i
	pid=$(svc_redis_pid)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do svc_pid_alive "$pid" || break; sleep 0.1; done
	if svc_pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -f "$SVC_REDIS_DIR/redis.pid"
	svc_log "Redis stopped (pid $pid)"
}

# ---- environment file and database ------------------------------------------------------

# Write $SVC_ENV_FILE: keep every existing line (user edits survive), rewrite the two URLs,
# add missing keys; secrets are generated only when absent.
svc_write_env() {
	local line key tmp k
	local -A forced=(
		[DATABASE_URL]="postgres://postgres@127.0.0.1:$SVC_PG_PORT/integrationsd"
		[REDIS_URL]="redis://127.0.0.1:$SVC_REDIS_PORT/0"
	)
	local -a order=(JWT_SECRET ENCRYPTION_KEY ENCRYPTION_PASSWORD ENCRYPTION_ALGORITHM
		DATABASE_URL REDIS_URL PORT BIND_ADDRESS FRONTEND_URL OUTBOUND_DENY_CIDRS)
	local -A seen=()
	local -a out=()
	mkdir -p "$SVC_STATE"
	if [ -f "$SVC_ENV_FILE" ]; then
		while IFS= read -r line || [ -n "$line" ]; do
			if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
				key=${BASH_REMATCH[1]}
				seen[$key]=1
				if [[ -v forced[$key] ]]; then line="$key=${forced[$key]}"; fi
			fi
			out+=("$line")
		done <"$SVC_ENV_FILE"
	else
		out+=("# integrationsd development environment, written by contrib/dev/services.sh."
			"# Secrets are generated once and kept; DATABASE_URL and REDIS_URL are rewritten"
			"# on every start. Edit freely: other lines are preserved.")
	fi
	for k in "${order[@]}"; do
		[[ -v seen[$k] ]] && continue
		case $k in
		JWT_SECRET) out+=("JWT_SECRET=$(svc_rand_hex 64)") ;;
		ENCRYPTION_KEY) out+=("ENCRYPTION_KEY=$(svc_rand_hex 16)") ;; # 32 chars: scheme B uses 32
		ENCRYPTION_PASSWORD) out+=("ENCRYPTION_PASSWORD=$(svc_rand_hex 32)") ;;
		ENCRYPTION_ALGORITHM) out+=("ENCRYPTION_ALGORITHM=aes-256-cbc") ;;
		DATABASE_URL | REDIS_URL) out+=("$k=${forced[$k]}") ;;
		PORT) out+=("PORT=3000") ;;
		BIND_ADDRESS) out+=("BIND_ADDRESS=127.0.0.1") ;;
		FRONTEND_URL) out+=("FRONTEND_URL=http://localhost:5173") ;;
		# the default also denies loopback; development runs upstreams (fakes, a local
		# MLflow) on this host, so allow it here (never in production)
		OUTBOUND_DENY_CIDRS) out+=("OUTBOUND_DENY_CIDRS=169.254.0.0/16,fe80::/10,100.100.100.200/32,fd00:ec2::254/128") ;;
		esac
	done
	tmp=$(mktemp "$SVC_STATE/.env.XXXXXX")
	chmod 600 "$tmp"
	printf '%s\n' "${out[@]}" >"$tmp"
	mv -f "$tmp" "$SVC_ENV_FILE"
}

# Export the environment the systemd unit sets (its Environment= lines), so a service started
# from here runs as installed.
svc_unit_env() {
	local kv
	while IFS= read -r kv; do export "${kv?}"; done < <(sed -n 's/^Environment=//p' "$SVC_ROOT/systemd/integrationsd.service.in")
}

# Export the env file's variables into the current shell.
svc_env_load() {
	set -a
	# shellcheck disable=SC1090
	. "$SVC_ENV_FILE"
	set +a
}

svc_psql() {
	PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' "$SVC_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SVC_PG_PORT" -U postgres "$@"
}

# Database `integrationsd`, and the VerifyWise-like public.users with a demo Admin user
# (id 1, organization 1, role 1) that integrationsd's membership check reads.
svc_db_setup() {
	if [ "$(svc_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'integrationsd'")" != 1 ]; then
		svc_psql -d postgres -c 'CREATE DATABASE integrationsd' >/dev/null
		svc_log "created database integrationsd"
	fi
	svc_psql -d integrationsd >/dev/null <<-'SQL'
	CREATE TABLE IF NOT EXISTS public.users (
	    id integer PRIMARY KEY,
	    organization_id integer,
	    role_id integer,
	    name text,
	    surname text,
	    email text
	);
	INSERT INTO public.users (id, organization_id, role_id, name, surname, email)
	VALUES (1, 1, 1, 'Demo', 'User', 'demo@example.com')
	ON CONFLICT (id) DO NOTHING;
	SQL
}

# ---- all together -----------------------------------------------------------------------

svc_start() {
	svc_pg_start
	svc_redis_start
	svc_write_env
	svc_db_setup
}

# Stop PG and Redis if they run (whoever started them): the `--stop` / `services-stop` path.
svc_stop() {
	svc_redis_stop
	svc_pg_stop
}

# Stop only what this process started (exit traps).
svc_stop_started() {
	if [ "$SVC_REDIS_STARTED" = 1 ]; then svc_redis_stop; SVC_REDIS_STARTED=0; fi
	if [ "$SVC_PG_STARTED" = 1 ]; then svc_pg_stop; SVC_PG_STARTED=0; fi
}

# A JWT for the demo user (id 1, organization 1, Admin), signed like VerifyWise's
# generateUserTokens (HS256 over the raw bytes of JWT_SECRET), valid 24 hours. The tenant
# id is derived, not hard-coded. Needs JWT_SECRET in the environment (svc_env_load).
svc_demo_token() {
	/usr/bin/python3 - <<'PY'
import base64, hashlib, hmac, json, os, time

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

org = 1
digest = base64.b64encode(hashlib.sha256(str(org).encode()).digest()).decode()
tenant = "".join(c for c in digest if c.isascii() and c.isalnum())[:10]
now = time.time()
header = {"alg": "HS256", "typ": "JWT"}
payload = {"id": 1, "email": "demo@example.com", "roleName": "Admin", "tenantId": tenant,
           "organizationId": org, "expire": int(now * 1000) + 24 * 3600 * 1000, "iat": int(now)}
signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
    b64url(json.dumps(payload, separators=(",", ":")).encode())
sig = hmac.new(os.environ["JWT_SECRET"].encode(), signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b64url(sig))
PY
}
