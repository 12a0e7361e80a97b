#!/usr/bin/env bash
# Runs mai's echo example end to end: builds the server and the client,
# starts the server on a free loopback port, runs the client against it
# (arguments are passed to the client), and stops the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/server" ./examples/echo/server
go build -o "$bin/client" ./examples/echo/client
"$bin/server" -addr 127.0.0.1:0 >"$bin/server.out" &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap 'stop; rm -rf "$bin"' EXIT
for _ in $(seq 1 100); do
  addr=$(sed -n 's/^listening on //p' "$bin/server.out")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited" >&2; exit 1; }
  sleep 0.05
done
[ -n "$addr" ] || { echo "server did not start" >&2; exit 1; }
echo "server listening on $addr"
"$bin/client" -addr "$addr" "${@:--conns=50}" 
