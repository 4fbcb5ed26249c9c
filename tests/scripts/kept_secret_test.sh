#!/usr/bin/env bash
# scripts/lib.sh kept_secret: a deleted var/ gets its secret back from the
# kept copy instead of a new one; a new one is drawn only when there is none,
# with a warning.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_STATE_HOME=$work/state
CLAYHOOK_ROOT=$work/checkout
# shellcheck source=scripts/lib.sh
. "$CLAYHOOK_SOURCE_DIR/scripts/lib.sh"
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

kept_secret var/clay-webhook-secret 2> first.log
grep -q "NEW secret" first.log || fail "no warning for a new secret: $(cat first.log)"
first=$(cat var/clay-webhook-secret)
[ ${#first} -eq 64 ] || fail "not 32 random bytes in hex: $first"
[ "$(stat -c %a var/clay-webhook-secret)" = 600 ] || fail "not mode 0600"

rm -rf var
kept_secret var/clay-webhook-secret 2> second.log
[ "$(cat var/clay-webhook-secret)" = "$first" ] || fail "var/ deleted: a different secret"
grep -q "put back the secret" second.log || fail "not said: $(cat second.log)"
grep -q "NEW secret" second.log && fail "warned of a new secret that is not new"

# An operator's own secret in the file wins, and becomes the kept one.
echo "my-own-secret" > var/clay-webhook-secret
kept_secret var/clay-webhook-secret 2> third.log
rm -rf var
kept_secret var/clay-webhook-secret 2> fourth.log
[ "$(cat var/clay-webhook-secret)" = "my-own-secret" ] || fail "the operator's secret was not kept"
echo ok
