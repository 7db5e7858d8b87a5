#!/bin/sh
# Starts one Sentinel of the prod Redis deployments. Sentinel rewrites its config file (replicas,
# peers, epochs, the current primary), so it runs from a copy in an emptyDir, made here at every
# start: the static sentinel.conf with each monitor line pointed at the primary another Sentinel
# names now (a Sentinel restarting after a failover must not go back to watching pod 0), plus the
# name it announces and the passwords.
set -eu
: "${POD_NAME:?}" "${REDIS_PASSWORD:?}"
umask 077
conf=/etc/sentinel/sentinel.conf
cp /config/sentinel.conf "$conf"

for name in $(sed -n 's/^sentinel monitor \([A-Za-z0-9_.-]*\) .*/\1/p' /config/sentinel.conf); do
  # The StatefulSet's governing Service, from the shipped `<set>-0.<service>`: only a pod of it counts.
  service=$(sed -n "s/^sentinel monitor $name [^ .]*\.\([a-z0-9-]*\) .*/\1/p" /config/sentinel.conf)
  for i in 0 1 2; do
    [ "redis-sentinel-$i" = "$POD_NAME" ] && continue
    answer=$(timeout 3 redis-cli -h "redis-sentinel-$i.redis-sentinel" -p 26379 --raw SENTINEL get-master-addr-by-name "$name" 2>/dev/null | head -n 1) || answer=""
    if [ -n "$service" ] && echo "$answer" | grep -Eq "^$service-[0-9]+\.$service\$"; then
      sed -i "s/^sentinel monitor $name [^ ]* /sentinel monitor $name $answer /" "$conf"
      break
    fi
  done
  echo "sentinel auth-pass $name $REDIS_PASSWORD" >>"$conf"
done
{
  echo "sentinel announce-ip $POD_NAME.redis-sentinel"
  # Clients (REDIS_SENTINEL_PASSWORD) and the other Sentinels authenticate with it.
  echo "requirepass $REDIS_PASSWORD"
} >>"$conf"
exec redis-server "$conf" --sentinel
