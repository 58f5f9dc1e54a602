#!/usr/bin/env bash
# Starts Portkey's AI gateway (Node build) in the foreground on
# 127.0.0.1:PORT. The gateway has no static model list: each request names
# its provider and upstream in headers, so MOCK_BASE_URL is what clients send
# as x-portkey-custom-host (the script only prints it as a reminder).
#
#   bench/peers/portkey.sh PORT MOCK_BASE_URL
#   e.g. bench/peers/portkey.sh 4200 http://127.0.0.1:9000/v1
#
# The script execs node, so its PID is the gateway's (a single process).
#
# Client:    POST http://127.0.0.1:PORT/v1/chat/completions
#            x-portkey-provider: openai
#            x-portkey-custom-host: MOCK_BASE_URL
#            Authorization: Bearer dummy        (forwarded to the provider)
#            Content-Type: application/json, body {"model":"mock-model",...}
# Readiness: GET  http://127.0.0.1:PORT/  -> 200 "AI Gateway says hey!"
#
# Environment knobs:
#   BIND_HOST           listen address (default 127.0.0.1)
#   PORTKEY_NODE        node binary (default: node on PATH)
#   PORTKEY_NODE_ARGS   extra node options, e.g. --max-old-space-size=512
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 PORT MOCK_BASE_URL" >&2
  exit 2
fi
PORT="$1"
MOCK_BASE_URL="$2"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$HERE/portkey"
ENTRY="$DIR/node_modules/@portkey-ai/gateway/build/start-server.js"
if [ ! -f "$ENTRY" ]; then
  echo "Portkey gateway is not installed: run bench/peers/install.sh portkey" >&2
  exit 1
fi

echo "portkey: clients must send x-portkey-provider: openai, x-portkey-custom-host: $MOCK_BASE_URL, Authorization: Bearer dummy" >&2

# Loopback hosts are on the gateway's default trusted custom-host list
# (localhost, 127.0.0.1, ::1); anything else must be listed here.
if [ -z "${TRUSTED_CUSTOM_HOSTS:-}" ]; then
  export TRUSTED_CUSTOM_HOSTS="localhost,127.0.0.1,::1"
fi
export NODE_ENV=production
export BIND_HOST="${BIND_HOST:-127.0.0.1}"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
unset REDIS_CONNECTION_STRING || true

cd "$DIR"
# --headless: no console UI and no log stream (NODE_ENV=production does the same).
# shellcheck disable=SC2086  # PORTKEY_NODE_ARGS is split on purpose
exec "${PORTKEY_NODE:-node}" ${PORTKEY_NODE_ARGS:-} --import "$DIR/bind-loopback.mjs" \
  "$ENTRY" --port="$PORT" --headless
