#!/usr/bin/env bash
# The Debian packages as an operator gets them: built by CPack from this
# build tree, checked by lintian (errors and warnings fail), installed with
# dpkg into a throwaway root (maintainer scripts included, run with
# DPKG_ROOT so nothing of this machine changes), the units checked with
# systemd-analyze, the installed `clayhook check` run on the installed
# config, the installed host started on a copy of it (secrets as systemd
# credentials) and sent a signed delivery, a plugin built against the
# installed clayhook-dev loaded by it, and a purge. Exits non-zero, saying
# why, on any failure.
set -euo pipefail
: "${CLAYHOOK_SOURCE_DIR:?}" "${CLAYHOOK_BUILD_DIR:?}" "${CMAKE:=cmake}" "${CPACK:=cpack}"
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in "$CPACK" lintian dpkg dpkg-deb systemd-analyze gzip; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/test.sh installs it)"
done
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$CLAYHOOK_BUILD_DIR/CMakeCache.txt")
[ "$prefix" = /usr ] || fail "the build's CMAKE_INSTALL_PREFIX is '$prefix': the package needs /usr"

work=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-pkg-XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build the packages.
(cd "$CLAYHOOK_BUILD_DIR" && "$CPACK" -G DEB -B "$work/packages") >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log"; fail "cpack"; }
host_deb=$(ls "$work"/packages/clayhook_*_*.deb)
dev_deb=$(ls "$work"/packages/clayhook-dev_*_*.deb)
echo "built $(basename "$host_deb") $(basename "$dev_deb")"

# 2. Lintian: no error, no warning.
lintian --tag-display-limit 0 --fail-on error,warning "$host_deb" "$dev_deb" >"$work/lintian.log" 2>&1 \
  || { cat "$work/lintian.log"; fail "lintian"; }
grep -E '^[EW]: ' "$work/lintian.log" && fail "lintian reported the tags above"
echo "lintian: $(grep -c '^I: ' "$work/lintian.log" || true) info tags, no warning or error"

# What the host package holds.
contents=$(dpkg-deb -c "$host_deb" | awk '{print $6}')
for f in ./usr/bin/clayhook ./etc/clayhook/clayhook.yaml ./lib/systemd/system/clayhook.service \
         ./lib/systemd/system/clayhook.socket ./usr/share/man/man1/clayhook.1.gz \
         ./usr/share/doc/clayhook/copyright ./usr/share/doc/clayhook/changelog.Debian.gz; do
  grep -qxF "$f" <<<"$contents" || fail "$f is not in the package"
done
grep -q '/clayhook/plugins/jsonl-sink.so$' <<<"$contents" || fail "no bundled plugin in the package"
grep -q '/clayhook/clayhook-plugin-worker$' <<<"$contents" || fail "no plugin worker in the package"
dpkg-deb -f "$host_deb" Depends | grep -q 'libpoconet' || fail "shlibdeps: no Poco dependency"
dpkg-deb -I "$host_deb" conffiles | grep -qx /etc/clayhook/clayhook.yaml \
  || fail "/etc/clayhook/clayhook.yaml is not a conffile"
dev_contents=$(dpkg-deb -c "$dev_deb" | awk '{print $6}')
grep -q '^./usr/include/clayhook/plugin.hpp$' <<<"$dev_contents" || fail "no SDK header in -dev"
grep -q '/cmake/clayhook-plugin-api/clayhook-plugin-apiConfig.cmake$' <<<"$dev_contents" \
  || fail "no CMake package in -dev"

# 3. Install into a throwaway root, maintainer scripts and all.
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg --root="$root" --log=/dev/null --force-not-root --force-depends --force-script-chrootless \
  --install "$host_deb" "$dev_deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --install"; }
dpkg --root="$root" -l clayhook clayhook-dev | grep -q '^ii  clayhook ' || fail "clayhook not installed"
grep -q 'it needs the webhook signing secret' "$work/dpkg.log" \
  || { cat "$work/dpkg.log"; fail "postinst did not say the service waits for its secret"; }
token="$root/etc/clayhook/admin-token"
[ -f "$token" ] || fail "postinst created no admin token"
[ "$(stat -c %a "$token")" = 600 ] || fail "admin token mode $(stat -c %a "$token"), want 600"
grep -Eqx '[0-9a-f]{64}' "$token" || fail "admin token is not 64 hex digits"
[ -f "$root/etc/clayhook/clayhook.yaml" ] || fail "conffile not in place"

# 4. The units: systemd-analyze verify (on a copy whose ExecStart is the
# unpacked binary: this machine has no /usr/bin/clayhook) and security.
mkdir "$work/units"
sed "s|/usr/bin/clayhook|$root/usr/bin/clayhook|" "$root/lib/systemd/system/clayhook.service" \
  >"$work/units/clayhook.service"
cp "$root/lib/systemd/system/clayhook.socket" "$work/units/"
systemd-analyze verify --man=no "$work/units/clayhook.service" "$work/units/clayhook.socket" \
  >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
[ -s "$work/verify.log" ] && { cat "$work/verify.log"; fail "systemd-analyze verify warned"; }
systemd-analyze security --offline=yes --threshold=20 "$work/units/clayhook.service" \
  >"$work/security.log" 2>&1 || { tail -5 "$work/security.log"; fail "systemd-analyze security: exposure above 2.0"; }
grep 'Overall exposure level' "$work/security.log"

# 5. The installed clayhook check on the installed config.
clayhook="$root/usr/bin/clayhook"
config="$root/etc/clayhook/clayhook.yaml"
if env -u CLAYHOOK_CONFIG -u CREDENTIALS_DIRECTORY "$clayhook" check --config "$config" >"$work/check1.log" 2>&1; then
  cat "$work/check1.log"; fail "check passed without the webhook secret"
fi
grep -q "cannot read $root/etc/clayhook/clay-webhook-secret" "$work/check1.log" \
  || { cat "$work/check1.log"; fail "check did not name the missing secret file"; }
secret="pkg-test-webhook-secret-$RANDOM$RANDOM"
(umask 077 && printf '%s\n' "$secret" >"$root/etc/clayhook/clay-webhook-secret")
env -u CLAYHOOK_CONFIG -u CREDENTIALS_DIRECTORY "$clayhook" check --config "$config" >"$work/check2.log" 2>&1 \
  || { cat "$work/check2.log"; fail "installed check on the installed config"; }
grep -q 'usable: 0 error(s), 0 warning(s)' "$work/check2.log" || { cat "$work/check2.log"; fail "check not clean"; }
grep -q "$root/usr/lib/.*/clayhook/plugins/jsonl-sink.so" "$work/check2.log" \
  || { cat "$work/check2.log"; fail "bundled:jsonl-sink not found in the installed layout"; }
"$clayhook" version | grep -q '^clayhook ' || fail "clayhook version"

# 6. A plugin built against the installed clayhook-dev.
cp -r "$CLAYHOOK_SOURCE_DIR/examples/hello-plugin" "$work/hello"
"$CMAKE" -S "$work/hello" -B "$work/hello/build" -DCMAKE_PREFIX_PATH="$root/usr" >"$work/hello.log" 2>&1 \
  && "$CMAKE" --build "$work/hello/build" >>"$work/hello.log" 2>&1 || { cat "$work/hello.log"; fail "hello plugin against clayhook-dev"; }

# 7. The installed host on a copy of the installed config (its state in
# the test folder), its secrets as systemd hands them over.
state="$work/state"; creds="$work/credentials"
mkdir -p "$state" "$creds"
cp "$token" "$creds/admin-token"; cp "$root/etc/clayhook/clay-webhook-secret" "$creds/"
sed -e "s|/var/lib/clayhook|$state|g" -e 's/^  port: 8080/  port: 0/' -e 's/^  port: 8081/  port: 0/' "$config" >"$work/run.yaml"
cat >>"$work/run.yaml" <<YAML
  - name: hello
    library: $work/hello/build/hello.so
YAML
CREDENTIALS_DIRECTORY="$creds" "$clayhook" serve --config "$work/run.yaml" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q 'msg=ready' "$work/serve.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; fail "the installed host exited"; }
  sleep 0.1
done
grep -q 'msg=ready' "$work/serve.log" || { cat "$work/serve.log"; fail "the installed host never got ready"; }
port=$(sed -n 's/.*msg=ready.* listen=[^ ]*:\([0-9]*\) .*/\1/p' "$work/serve.log")
[ -n "$port" ] || fail "no port in the ready line"
grep -q 'plugin=hello' "$work/serve.log" || { cat "$work/serve.log"; fail "the hello plugin did not load"; }
CREDENTIALS_DIRECTORY="$creds" "$clayhook" send --config "$work/run.yaml" --url "http://127.0.0.1:$port/webhooks/clay" \
  --sample enrichment.completed >"$work/send.log" 2>&1 || { cat "$work/send.log" "$work/serve.log"; fail "send"; }
grep -q 'HTTP 200' "$work/send.log" || { cat "$work/send.log"; fail "send got no 200"; }
for _ in $(seq 1 300); do
  [ -s "$state/events.jsonl" ] && break
  sleep 0.1
done
grep -q '"type":"enrichment.completed"' "$state/events.jsonl" || fail "the sink did not write the event"
kill -TERM "$pid"; wait "$pid" || fail "serve exited $? on SIGTERM"; pid=""
grep -q "$secret" "$work/serve.log" && fail "the secret is in the log"

# 8. Purge: the generated token goes, the state and the secret stay.
mkdir -p "$root/var/lib/clayhook"
dpkg --root="$root" --log=/dev/null --force-not-root --force-depends --force-script-chrootless \
  --purge clayhook clayhook-dev >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
[ -e "$token" ] && fail "purge left the admin token"
[ -e "$root/usr/bin/clayhook" ] && fail "purge left the binary"
[ -e "$root/etc/clayhook/clayhook.yaml" ] && fail "purge left the conffile"
[ -e "$root/etc/clayhook/clay-webhook-secret" ] || fail "purge deleted the operator's secret"
echo "PASS"
