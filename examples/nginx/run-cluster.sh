#!/bin/sh
# Start Redis-backed hubs on ports 8701-8703 and nginx on 8080 in front of them.
# Needs: rtnb installed with the redis extra, a Redis on 127.0.0.1:6379, nginx.
# Ctrl-C stops everything.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
redis_url=${RTNB_REDIS:-redis://127.0.0.1:6379/0}
workdir=$(mktemp -d /tmp/rtnb-nginx.XXXXXX)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    nginx -c "$here/nginx.conf" -p "$workdir/" -s quit 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM
for n in 1 2 3; do
    rtnb serve --port "870$n" --redis "$redis_url" --hub-id "hub$n" &
    pids="$pids $!"
done
nginx -c "$here/nginx.conf" -p "$workdir/" -g 'daemon off;' &
pids="$pids $!"
echo "rtnb cluster: http://127.0.0.1:8080  (ws://127.0.0.1:8080/ws)"
wait
