#!/usr/bin/env bash
# Smoke check of the benchmark peers: starts the mock provider and each peer,
# times the peer's startup, sends one non-streaming and one streaming chat
# completion through it, checks that "Hello, world!" comes back (and, for the
# stream, that it arrives as several SSE chunks), and reports the peer's idle
# memory. Stops everything it started.
#
#   bench/peers/smoke.sh [litellm] [portkey]     # default: both
#
#   HUB_MOCK=path/to/hub-mock   mock provider binary (default debug/hub-mock, then
#                               release/hub-mock in $CARGO_TARGET_DIR, else target/)
#   STARTUP_TIMEOUT=seconds     how long to wait for a peer to be ready (default 300)
#
# Exit status is non-zero if any check failed. Prints one line per check and
# a closing "N passed, N failed" line.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-300}"

peers=("$@")
[ "${#peers[@]}" -eq 0 ] && peers=(litellm portkey)

mock_bin="${HUB_MOCK:-}"
if [ -z "$mock_bin" ]; then
  target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
  for c in "$target_dir/debug/hub-mock" "$target_dir/release/hub-mock"; do
    [ -x "$c" ] && { mock_bin="$c"; break; }
  done
fi
[ -x "${mock_bin:-}" ] || { echo "hub-mock not found (build it, or set HUB_MOCK)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hub-bench-smoke.XXXXXX")"
pgids=()
cleanup() {
  for g in "${pgids[@]}"; do
    kill -TERM -- "-$g" 2>/dev/null
  done
  for g in "${pgids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 -- "-$g" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$g" 2>/dev/null
  done
  pgids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
check() { # name, status (0 = ok), detail
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   $1${3:+: $3}"
  else
    failed=$((failed + 1)); echo "FAIL $1${3:+: $3}"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

# Sum of Rss and Pss (MiB) over every process in a process group.
group_mem() {
  local g="$1" rss=0 pss=0 r s p
  for p in $(pgrep -g "$g"); do
    r=$(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss + ${r:-0})); pss=$((pss + ${s:-0}))
  done
  echo "rss=$((rss / 1024)) MiB pss=$((pss / 1024)) MiB processes=$(pgrep -g "$g" | wc -l)"
}

# Starts a command in its own session (so its process group can be stopped);
# sets BG_PID.
start_bg() { # logfile, command...
  local log="$1"; shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  BG_PID=$!
  pgids+=("$BG_PID")
}

content_of() { # reads a chat completion (JSON or SSE) on stdin, prints content and chunk count
  python3 -c '
import json, sys
raw = sys.stdin.read()
if raw.lstrip().startswith("{"):
    try:
        print(json.loads(raw)["choices"][0]["message"]["content"]); print(0)
    except Exception:
        print(""); print(0)
    sys.exit()
text, chunks = "", 0
for line in raw.splitlines():
    if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
        chunks += 1
        try:
            for c in json.loads(line[5:]).get("choices", []):
                text += (c.get("delta") or {}).get("content") or ""
        except Exception:
            pass
print(text); print(chunks)'
}

mock_log="$WORK/mock.log"
start_bg "$mock_log" "$mock_bin"
mock_pid=$BG_PID
mock_url=""
for _ in $(seq 1 100); do
  mock_url="$(sed -n 's/^mock listening on //p' "$mock_log" | head -1)"
  [ -n "$mock_url" ] && break
  sleep 0.1
done
[ -n "$mock_url" ] || { echo "mock provider did not start" >&2; cat "$mock_log" >&2; exit 1; }
MOCK_BASE_URL="$mock_url/v1"
echo "mock provider: $MOCK_BASE_URL (pid $mock_pid)"

run_peer() {
  local peer="$1" port log pid start ready_url ready_s workers
  port="$(free_port)"
  log="$WORK/$peer.log"
  local -a hdr
  case "$peer" in
    litellm)
      ready_url="http://127.0.0.1:$port/health/liveliness"
      workers="${LITELLM_NUM_WORKERS:-$(nproc)}"
      hdr=(-H "Authorization: Bearer ${LITELLM_MASTER_KEY:-sk-bench}")
      ;;
    portkey)
      ready_url="http://127.0.0.1:$port/"
      workers=1
      hdr=(-H "x-portkey-provider: openai" -H "x-portkey-custom-host: $MOCK_BASE_URL"
           -H "Authorization: Bearer dummy")
      ;;
    *) echo "unknown peer $peer" >&2; return ;;
  esac
  echo "== $peer on 127.0.0.1:$port"
  start=$(now)
  start_bg "$log" "$HERE/$peer.sh" "$port" "$MOCK_BASE_URL"
  pid=$BG_PID
  local ok=1
  for _ in $(seq 1 $((STARTUP_TIMEOUT * 20))); do
    if curl -sf -o /dev/null "$ready_url"; then ok=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  ready_s=$(elapsed "$start")
  check "$peer ready ($ready_url)" $ok "${ready_s} s"
  if [ "$ok" -ne 0 ]; then tail -20 "$log"; return; fi
  if [ "$peer" = litellm ]; then
    # /health/liveliness answers as soon as one worker serves; all workers are
    # up when each has logged its startup.
    for _ in $(seq 1 $((STARTUP_TIMEOUT * 20))); do
      [ "$(grep -c 'Application startup complete' "$log")" -ge "$workers" ] && break
      sleep 0.05
    done
    check "$peer all $workers workers started" \
      $([ "$(grep -c 'Application startup complete' "$log")" -ge "$workers" ]; echo $?) "$(elapsed "$start") s"
  fi
  sleep 5
  echo "     idle memory after startup: $(group_mem "$pid")"

  local url="http://127.0.0.1:$port/v1/chat/completions" out code got
  out="$WORK/$peer.plain"
  code=$(curl -s -o "$out" -w '%{http_code}' "$url" "${hdr[@]}" -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"Say hello"}]}')
  got="$(content_of <"$out" | head -1)"
  check "$peer non-streaming" $([ "$code" = 200 ] && [ "$got" = "Hello, world!" ]; echo $?) \
    "HTTP $code, content '$got'$([ "$code" = 200 ] || echo ", body $(head -c 300 "$out")")"

  out="$WORK/$peer.stream"
  code=$(curl -sN -o "$out" -w '%{http_code}' "$url" "${hdr[@]}" -H 'Content-Type: application/json' \
    -d '{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Say hello"}]}')
  local parsed chunks
  parsed="$(content_of <"$out")"
  got="$(echo "$parsed" | head -1)"
  chunks="$(echo "$parsed" | tail -1)"
  check "$peer streaming" $([ "$code" = 200 ] && [ "$got" = "Hello, world!" ] && [ "$chunks" -gt 1 ]; echo $?) \
    "HTTP $code, $chunks chunks, content '$got'$([ "$code" = 200 ] || echo ", body $(head -c 300 "$out")")"
  if [ "$code" != 200 ]; then
    grep -a -m1 -A3 -i 'error' "$log" | sed 's/^/     log: /'
  fi

  sleep 2
  echo "     memory after the two requests: $(group_mem "$pid")"
  kill -TERM "$pid" 2>/dev/null
  start=$(now)
  for _ in $(seq 1 200); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.05; done
  echo "     stopped by SIGTERM to pid $pid in $(elapsed "$start") s"
}

for p in "${peers[@]}"; do
  run_peer "$p"
done

cleanup
echo "logs: $WORK"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
