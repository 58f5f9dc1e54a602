#!/usr/bin/env bash
# Installs the benchmark peers into throwaway environments inside bench/peers/:
#   - LiteLLM proxy (PyPI, litellm[proxy]) into bench/peers/.venv-litellm
#   - Portkey AI gateway (npm, @portkey-ai/gateway) into bench/peers/portkey/node_modules
# Idempotent: a peer already installed from the current pins is skipped.
# Prints how long each install took.
#
#   bench/peers/install.sh            # both
#   bench/peers/install.sh litellm    # only LiteLLM
#   bench/peers/install.sh portkey    # only Portkey
#
# Environment:
#   FORCE=1                   reinstall even if present
#   PYTHON=python3.11         interpreter for the LiteLLM venv (default: python3.11, else python3)
#   LITELLM_WHEELHOUSE=DIR    install LiteLLM offline from wheels in DIR (pip --no-index);
#                             fill DIR once with
#                             pip download -c bench/peers/litellm-constraints.txt -d DIR 'litellm[proxy]==VERSION'
#   LITELLM_CONSTRAINTS=none  resolve LiteLLM's dependencies afresh instead of using
#                             litellm-constraints.txt
#
# Network is needed only to install (PyPI and the npm registry; npm uses its
# local cache first). The installed peers start and run without network.
set -euo pipefail

LITELLM_VERSION="1.108.7"
PORTKEY_VERSION="1.15.2"   # must match portkey/package.json and portkey/package-lock.json

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-litellm"
CONSTRAINTS="$HERE/litellm-constraints.txt"
PORTKEY_DIR="$HERE/portkey"
FORCE="${FORCE:-0}"

want_litellm=1
want_portkey=1
if [ "$#" -gt 0 ]; then
  want_litellm=0
  want_portkey=0
  for arg in "$@"; do
    case "$arg" in
      litellm) want_litellm=1 ;;
      portkey) want_portkey=1 ;;
      *) echo "usage: $0 [litellm] [portkey]" >&2; exit 2 ;;
    esac
  done
fi

# Fingerprint of the files that define an install, stored beside it.
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
  done
  echo "no python3 found (set PYTHON=...)" >&2
  exit 1
}

install_litellm() {
  local start=$SECONDS stamp="$VENV/.installed" want
  want="litellm[proxy]==$LITELLM_VERSION $(fingerprint "$CONSTRAINTS")"
  if [ "$FORCE" != 1 ] && [ -x "$VENV/bin/litellm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "litellm $LITELLM_VERSION: already installed in $VENV (skipped)"
    return
  fi
  local py
  py="$(pick_python)"
  echo "litellm $LITELLM_VERSION: installing into $VENV with $("$py" --version 2>&1)"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  local -a pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  local -a src=()
  if [ -n "${LITELLM_WHEELHOUSE:-}" ]; then
    src=(--no-index --find-links "$LITELLM_WHEELHOUSE")
  else
    "${pip[@]}" --upgrade pip
  fi
  local -a cons=()
  [ "${LITELLM_CONSTRAINTS:-}" = none ] || cons=(-c "$CONSTRAINTS")
  "${pip[@]}" "${src[@]}" "${cons[@]}" "litellm[proxy]==$LITELLM_VERSION"
  local got
  got="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
  if [ "$got" != "$LITELLM_VERSION" ]; then
    echo "installed litellm $got, expected $LITELLM_VERSION" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
  echo "litellm $LITELLM_VERSION: installed in $((SECONDS - start)) s"
}

install_portkey() {
  local start=$SECONDS stamp="$PORTKEY_DIR/node_modules/.installed" want
  command -v npm >/dev/null 2>&1 || { echo "npm not found" >&2; exit 1; }
  if [ -f "$PORTKEY_DIR/package-lock.json" ]; then
    want="$(fingerprint "$PORTKEY_DIR/package.json" "$PORTKEY_DIR/package-lock.json")"
  else
    want="no-lock"
  fi
  if [ "$FORCE" != 1 ] && [ "$want" != no-lock ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
     [ -f "$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
    echo "portkey gateway $PORTKEY_VERSION: already installed in $PORTKEY_DIR/node_modules (skipped)"
    return
  fi
  echo "portkey gateway $PORTKEY_VERSION: installing into $PORTKEY_DIR/node_modules with node $(node --version)"
  rm -rf "$PORTKEY_DIR/node_modules"
  (
    cd "$PORTKEY_DIR"
    if [ -f package-lock.json ]; then
      npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error
    else
      npm install --omit=dev --no-audit --no-fund --loglevel=error
    fi
  )
  local got
  got="$(node -p "require('$PORTKEY_DIR/node_modules/@portkey-ai/gateway/package.json').version")"
  if [ "$got" != "$PORTKEY_VERSION" ]; then
    echo "installed @portkey-ai/gateway $got, expected $PORTKEY_VERSION" >&2
    exit 1
  fi
  fingerprint "$PORTKEY_DIR/package.json" "$PORTKEY_DIR/package-lock.json" >"$stamp"
  echo "portkey gateway $PORTKEY_VERSION: installed in $((SECONDS - start)) s"
}

[ "$want_litellm" = 1 ] && install_litellm
[ "$want_portkey" = 1 ] && install_portkey
exit 0
