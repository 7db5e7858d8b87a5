#!/usr/bin/env bash
# Makes sure the real servers WristPay needs answer on their local ports, starting them (and,
# as root, installing Debian's packages) when they do not. Used by `npm start` and .ci/run.
#   scripts/ensure-infra.sh              Redis and NATS JetStream
#   scripts/ensure-infra.sh --postgres   ... and PostgreSQL (tests; npm start uses PGlite unless DATABASE_URL is set)
#   ... --prometheus                      ... and Debian's prometheus/promtool installed (the rules test,
#                                         the Prometheus integration test, WRISTPAY_PROMETHEUS=1 npm start);
#                                         nothing is started: each user runs its own on its own port
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir="${WRISTPAY_DATA_DIR:-$PWD/.data}"
with_postgres=false
with_prometheus=false
for arg in "$@"; do
  case "$arg" in
    --postgres) with_postgres=true ;;
    --prometheus) with_prometheus=true ;;
    *) echo "infra: unknown option $arg" >&2; exit 2 ;;
  esac
done
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 100); do listening "$2" && { echo "infra: $1 is up on 127.0.0.1:$2"; return 0; }; sleep 0.2; done
  echo "infra: $1 did not come up on 127.0.0.1:$2" >&2
  return 1
}
apt_updated=false
install() {
  if [ "$(id -u)" != 0 ]; then
    echo "infra: $1 is missing; install the Debian package(s) '${*:2}' (needs root)" >&2
    exit 1
  fi
  $apt_updated || { apt-get update -qq; apt_updated=true; }
  echo "infra: installing ${*:2}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
}

if listening 6379; then
  echo "infra: Redis is up on 127.0.0.1:6379"
else
  command -v redis-server >/dev/null || install Redis redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 6379
fi

if listening 4222; then
  echo "infra: NATS is up on 127.0.0.1:4222"
else
  command -v nats-server >/dev/null || install NATS nats-server
  mkdir -p "$data_dir/nats"
  setsid nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$data_dir/nats" >"$data_dir/nats-server.log" 2>&1 < /dev/null &
  wait_for NATS 4222
fi

if $with_postgres; then
  if listening 5432; then
    echo "infra: PostgreSQL is up on 127.0.0.1:5432"
  else
    [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] || install PostgreSQL postgresql
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for PostgreSQL 5432
  fi
  # The tests' default database (TEST_DATABASE_URL); a fresh install does not have it.
  if command -v runuser >/dev/null && [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
      || runuser -u postgres -- createdb test
  fi
fi

if $with_prometheus; then
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    echo "infra: prometheus and promtool are installed ($(promtool --version 2>&1 | head -n 1))"
  else
    install Prometheus prometheus
    # Debian's package starts a system Prometheus on :9090 where init can; WristPay runs its own.
    command -v systemctl >/dev/null && systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
fi
