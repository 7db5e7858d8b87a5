#!/usr/bin/env bash
# Point-in-time recovery drill, for real, on this machine: what the prod CloudNativePG Cluster
# does with barmanObjectStore (base backup + continuous WAL archive) and what a recovery
# Cluster (k8s/overlays/prod/postgres/recovery-cluster.yaml) does with recoveryTarget.targetTime,
# done by hand with the same PostgreSQL mechanisms:
#   1. a primary with WAL archiving to a directory (the object store's stand-in);
#   2. a base backup with pg_basebackup;
#   3. writes after the backup: one row before the recovery target time, one after;
#   4. the primary is lost; a new data directory is restored from the base backup and replays
#      the archived WAL up to the target time (restore_command + recovery_target_time), then
#      promotes;
#   5. checks: the rows written before the target are there, the one after is not.
# Exit 0 only when the checks hold. Ports 28510 (primary) and 28511 (restored); nothing shared
# is touched. Run: bash ops/restore-drill.sh  (as root it runs PostgreSQL as user postgres).
set -euo pipefail

PGBIN=${PGBIN:-$(dirname "$(readlink -f "$(command -v pg_ctl)")")}
PRIMARY_PORT=${PRIMARY_PORT:-28510}
RESTORE_PORT=${RESTORE_PORT:-28511}
WORK=$(mktemp -d /tmp/wp-restore-drill.XXXXXX)
chmod 755 "$WORK"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
sql() { as_pg "$PGBIN/psql" -X -q -t -A -h "$WORK/sock" -p "$1" -d drill -v ON_ERROR_STOP=1 -c "$2"; }
step() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }

cleanup() {
  for d in primary restored; do
    [ -f "$WORK/$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/$d" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/archive" "$WORK/sock"
[ "$(id -u)" = 0 ] && chown -R postgres "$WORK"

step "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), work dir $WORK"
as_pg "$PGBIN/initdb" -D "$WORK/primary" -U postgres --auth=trust >/dev/null
cat >>"$WORK/primary/postgresql.conf" <<CONF
port = $PRIMARY_PORT
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
wal_level = replica
archive_mode = on
# The object store's stand-in: never overwrite a segment already archived.
archive_command = 'test ! -f $WORK/archive/%f && cp %p $WORK/archive/%f'
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -l "$WORK/primary.log" -w start >/dev/null
as_pg "$PGBIN/createdb" -h "$WORK/sock" -p "$PRIMARY_PORT" -U postgres drill
sql "$PRIMARY_PORT" "CREATE TABLE ledger_rows (id int PRIMARY KEY, note text NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
sql "$PRIMARY_PORT" "INSERT INTO ledger_rows (id, note) VALUES (1, 'before the base backup')"
step "primary up on port $PRIMARY_PORT, WAL archived to $WORK/archive; row 1 written"

as_pg "$PGBIN/pg_basebackup" -h "$WORK/sock" -p "$PRIMARY_PORT" -U postgres -D "$WORK/base" -X stream -c fast
step "base backup taken ($(du -sh "$WORK/base" | cut -f1))"

sql "$PRIMARY_PORT" "INSERT INTO ledger_rows (id, note) VALUES (2, 'after the backup, before the target')"
sleep 1
TARGET=$(sql "$PRIMARY_PORT" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1
sql "$PRIMARY_PORT" "INSERT INTO ledger_rows (id, note) VALUES (3, 'after the target: a bad write to undo')"
# Close the current WAL segment so the archiver ships it (CNPG: archive_timeout does the same).
sql "$PRIMARY_PORT" "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 50); do
  [ "$(sql "$PRIMARY_PORT" "SELECT last_failed_wal IS NULL AND archived_count > 0 AND last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" = t ] && break
  sleep 0.2
done
step "row 2 written, recovery target $TARGET, row 3 written after it; $(ls "$WORK/archive" | wc -l) WAL file(s) archived"
sql "$PRIMARY_PORT" "SELECT id || ' | ' || note || ' | ' || written_at FROM ledger_rows ORDER BY id" | sed 's/^/    primary: /'

as_pg "$PGBIN/pg_ctl" -D "$WORK/primary" -m immediate stop >/dev/null
step "primary lost (stopped -m immediate); restoring into a new data directory"

as_pg cp -a "$WORK/base" "$WORK/restored"
cat >>"$WORK/restored/postgresql.conf" <<CONF
port = $RESTORE_PORT
archive_mode = off
restore_command = 'cp $WORK/archive/%f %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
CONF
as_pg touch "$WORK/restored/recovery.signal"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w -t 120 start >/dev/null
for _ in $(seq 1 100); do
  [ "$(sql "$RESTORE_PORT" "SELECT pg_is_in_recovery()")" = f ] && break
  sleep 0.2
done
step "restored server on port $RESTORE_PORT promoted: $(grep -o 'recovery stopping before commit of transaction [0-9]*, time [^"]*' "$WORK/restored.log" | head -1)"
sql "$RESTORE_PORT" "SELECT id || ' | ' || note || ' | ' || written_at FROM ledger_rows ORDER BY id" | sed 's/^/    restored: /'

ROWS=$(sql "$RESTORE_PORT" "SELECT string_agg(id::text, ',' ORDER BY id) FROM ledger_rows")
if [ "$ROWS" = "1,2" ]; then
  step "PASS: rows 1 and 2 (before the target) restored, row 3 (after it) is not"
else
  step "FAIL: expected rows 1,2 after recovery to $TARGET, found ${ROWS:-none}"
  exit 1
fi
