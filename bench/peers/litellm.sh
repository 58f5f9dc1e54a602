#!/usr/bin/env bash
# Starts the LiteLLM proxy in the foreground on 127.0.0.1:PORT, forwarding the
# model `mock-model` to an OpenAI-compatible provider at MOCK_BASE_URL.
#
#   bench/peers/litellm.sh PORT MOCK_BASE_URL
#   e.g. bench/peers/litellm.sh 4100 http://127.0.0.1:9000/v1
#
# The script execs the proxy, so its PID is the proxy's supervisor process
# (uvicorn), which starts LITELLM_NUM_WORKERS worker processes as its
# children. SIGTERM to that PID stops all of them (in 4 to 5 s). SIGKILL to
# that PID alone leaves the workers running and serving: to kill hard, start
# the script in its own process group and signal the group.
#
# Client:    POST http://127.0.0.1:PORT/v1/chat/completions
#            Authorization: Bearer $LITELLM_MASTER_KEY (default sk-bench)
#            Content-Type: application/json, body {"model":"mock-model",...}
# Readiness: GET  http://127.0.0.1:PORT/health/liveliness  -> 200 once one
#            worker serves; all workers serve once stderr holds one line
#            "Application startup complete." per worker.
#
# Environment knobs:
#   LITELLM_NUM_WORKERS  uvicorn worker processes (default: number of CPUs)
#   LITELLM_MASTER_KEY   key clients must send (default sk-bench; must start with sk-)
#   LITELLM_WORKER_HEALTHCHECK_TIMEOUT  seconds before uvicorn kills a silent worker (default 600)
#   LITELLM_EXTRA_ARGS   extra CLI arguments appended to the litellm command
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 PORT MOCK_BASE_URL" >&2
  exit 2
fi
PORT="$1"
MOCK_BASE_URL="$2"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-litellm"
if [ ! -x "$VENV/bin/litellm" ]; then
  echo "LiteLLM is not installed: run bench/peers/install.sh litellm" >&2
  exit 1
fi

NUM_WORKERS="${LITELLM_NUM_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
MASTER_KEY="${LITELLM_MASTER_KEY:-sk-bench}"
# uvicorn's supervisor kills a worker that does not answer its ping within this
# many seconds (uvicorn's default is 5). On 2 cores a second worker still
# importing LiteLLM, or a worker saturated by a load test, misses a 5 s ping
# and is killed and respawned in a loop, so the limit is raised.
HEALTHCHECK_TIMEOUT="${LITELLM_WORKER_HEALTHCHECK_TIMEOUT:-600}"

# The generated config lives in a per-port temp dir, rewritten at every start
# (exec leaves no shell behind to delete it); every worker reads it at startup.
CONF_DIR="${TMPDIR:-/tmp}/hub-bench-litellm-$PORT"
mkdir -p "$CONF_DIR"
chmod 700 "$CONF_DIR"
CONFIG="$CONF_DIR/config.yaml"
cat >"$CONFIG" <<YAML
model_list:
  - model_name: mock-model
    litellm_params:
      model: openai/mock-model
      api_base: "$MOCK_BASE_URL"
      api_key: dummy

litellm_settings:
  set_verbose: false
  json_logs: false
  request_timeout: 600

general_settings:
  master_key: "$MASTER_KEY"
  disable_spend_logs: true
  disable_error_logs: true
YAML

# Uvicorn logging: lifecycle messages stay on (each worker prints
# "Application startup complete." once it serves, which tells when all workers
# are up), the per-request access log is off.
LOG_CONFIG="$CONF_DIR/log_config.json"
cat >"$LOG_CONFIG" <<'JSON'
{
  "version": 1,
  "disable_existing_loggers": false,
  "formatters": {
    "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s", "use_colors": false}
  },
  "handlers": {
    "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
  },
  "loggers": {
    "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": false},
    "uvicorn.error": {"level": "INFO"},
    "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": false}
  }
}
JSON

# No database: make sure one is not picked up from the caller's environment.
unset DATABASE_URL DIRECT_URL REDIS_HOST REDIS_URL REDIS_PORT REDIS_PASSWORD || true

# Offline and quiet: bundled model cost map and other bundled catalogs instead
# of fetching them at startup, no telemetry, no .env loading, error logs only.
export LITELLM_LOCAL_MODEL_COST_MAP=True
export LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True
export LITELLM_LOCAL_AUTOROUTER_PRESETS=True
export LITELLM_LOCAL_BLOG_POSTS=True
export LITELLM_LOCAL_POLICY_TEMPLATES=True
export LITELLM_TELEMETRY_DISABLED=true
export LITELLM_MODE=PRODUCTION
export LITELLM_LOG=ERROR
export DISABLE_ADMIN_UI=True
export PYTHONUNBUFFERED=1
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

# shellcheck disable=SC2086  # LITELLM_EXTRA_ARGS is split on purpose
exec "$VENV/bin/litellm" \
  --config "$CONFIG" \
  --log_config "$LOG_CONFIG" \
  --host 127.0.0.1 \
  --port "$PORT" \
  --num_workers "$NUM_WORKERS" \
  --timeout_worker_healthcheck "$HEALTHCHECK_TIMEOUT" \
  ${LITELLM_EXTRA_ARGS:-}
