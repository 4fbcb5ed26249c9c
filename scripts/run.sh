#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs the host on
# config/clayhook.yaml (SQLite under var/). Extra arguments go to
# `clayhook serve`, e.g. scripts/run.sh --config my.yaml
set -euo pipefail
CLAYHOOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CLAYHOOK_ROOT/scripts/lib.sh"
cd "$CLAYHOOK_ROOT"

ensure_packages "${CLAYHOOK_RUN_PACKAGES[@]}"
say "building (build/)"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLAYHOOK_BUILD_TESTS=OFF

mkdir -p var
chmod 700 var
if [ -z "${CLAY_WEBHOOK_SECRET:-}" ]; then
  kept_secret var/clay-webhook-secret
  say "webhook secret: var/clay-webhook-secret (set CLAY_WEBHOOK_SECRET to use your own)"
fi
if [ -z "${CLAYHOOK_ADMIN_TOKEN:-}" ]; then
  kept_secret var/admin-token
  say "admin token: var/admin-token (set CLAYHOOK_ADMIN_TOKEN to use your own)"
fi

say "starting: build/bin/clayhook serve --config config/clayhook.yaml $*"
exec build/bin/clayhook serve --config config/clayhook.yaml "$@"
