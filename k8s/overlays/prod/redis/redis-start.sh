#!/bin/sh
# Starts one Redis data node of a prod Redis StatefulSet (redis-sessions, redis-risk). Writes
# /etc/redis/redis.conf (an emptyDir: after a failover Sentinel sends REPLICAOF + CONFIG REWRITE)
# from this use's static settings (/config/redis.conf) plus what depends on the pod: the stable
# name it announces, the password, and which node it replicates. The primary is whichever node
# the Sentinels name now; when none answers (first start, or every Sentinel down) it is pod 0.
set -eu
: "${POD_NAME:?}" "${REDIS_SERVICE:?}" "${REDIS_MASTER_NAME:?}" "${REDIS_PASSWORD:?}"
self="$POD_NAME.$REDIS_SERVICE"

primary=""
for i in 0 1 2; do
  # REDISCLI_AUTH (the pod's env) authenticates to the Sentinels too: they share the password.
  answer=$(timeout 3 redis-cli -h "redis-sentinel-$i.redis-sentinel" -p 26379 --raw SENTINEL get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | head -n 1) || answer=""
  # Only a node of this StatefulSet counts: an error text or an empty answer does not.
  if echo "$answer" | grep -Eq "^$REDIS_SERVICE-[0-9]+\.$REDIS_SERVICE\$"; then
    primary=$answer
    break
  fi
done
[ -n "$primary" ] || primary="$REDIS_SERVICE-0.$REDIS_SERVICE"

umask 077
conf=/etc/redis/redis.conf
{
  cat /config/redis.conf
  echo "replica-announce-ip $self"
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  if [ "$primary" != "$self" ]; then echo "replicaof $primary 6379"; fi
} >"$conf"
echo "redis-start: $self starts as $([ "$primary" = "$self" ] && echo primary || echo "replica of $primary")"
exec redis-server "$conf"
