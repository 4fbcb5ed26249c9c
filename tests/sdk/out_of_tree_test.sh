#!/usr/bin/env bash
# Installs the project into a temporary prefix, builds examples/hello-plugin
# against it with find_package(clayhook-plugin-api), and has the installed
# clayhook load the result. Exits non-zero, saying why, on any failure.
set -euo pipefail
: "${CLAYHOOK_SOURCE_DIR:?}" "${CLAYHOOK_BUILD_DIR:?}" "${CMAKE:=cmake}"
work=$(mktemp -d "${TMPDIR:-/tmp}/clayhook-oot-XXXXXX")
trap 'rm -rf "$work"' EXIT

# Staged with DESTDIR: the layout has absolute parts (/etc/clayhook,
# /lib/systemd/system) that must not reach this machine's.
DESTDIR="$work/root" "$CMAKE" --install "$CLAYHOOK_BUILD_DIR" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; echo "FAIL: cmake --install"; exit 1; }
prefix_dir=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$CLAYHOOK_BUILD_DIR/CMakeCache.txt")
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$CLAYHOOK_BUILD_DIR/CMakeCache.txt")
mkdir -p "$work/root$prefix_dir"
ln -s "$work/root$prefix_dir" "$work/prefix"
for f in include/clayhook/plugin_abi.h include/clayhook/plugin.hpp include/clayhook/json.hpp \
         "$libdir/cmake/clayhook-plugin-api/clayhook-plugin-apiConfig.cmake" \
         "$libdir/cmake/clayhook-plugin-api/ClayhookPlugin.cmake" bin/clayhook \
         "$libdir/clayhook/plugins/jsonl-sink.so"; do
  [ -e "$work/prefix/$f" ] || { echo "FAIL: $f was not installed"; exit 1; }
done

# A copy of the example, so nothing of the source tree is on the include path.
cp -r "$CLAYHOOK_SOURCE_DIR/examples/hello-plugin" "$work/hello"
"$CMAKE" -S "$work/hello" -B "$work/hello/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; echo "FAIL: configure"; exit 1; }
"$CMAKE" --build "$work/hello/build" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; echo "FAIL: build"; exit 1; }
so="$work/hello/build/hello.so"
[ -f "$so" ] || { echo "FAIL: no hello.so"; exit 1; }

# Only the entry symbol is exported.
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^_' || true)
[ "$exported" = "clayhook_plugin_entry" ] || { echo "FAIL: exports: $exported"; exit 1; }

# Asking for an ABI major the package is not: find_package must refuse.
mkdir -p "$work/wrong"
cat >"$work/wrong/CMakeLists.txt" <<'CMK'
cmake_minimum_required(VERSION 3.20)
project(wrong LANGUAGES CXX)
find_package(clayhook-plugin-api 2.0 REQUIRED)
CMK
if "$CMAKE" -S "$work/wrong" -B "$work/wrong/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
     >"$work/wrong.log" 2>&1; then
  echo "FAIL: find_package(clayhook-plugin-api 2.0) was accepted"; exit 1
fi

cat >"$work/hello.yaml" <<YAML
admin: {enabled: false}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["\${OOT_SECRET}"]}
plugins:
  - name: hello
    library: $so
    config: {greeting: hi}
  - name: sink
    library: bundled:jsonl-sink
    config: {path: $work/events.jsonl}
YAML
out=$(OOT_SECRET=out-of-tree-secret "$work/prefix/bin/clayhook" check --config "$work/hello.yaml") \
  || { echo "$out"; echo "FAIL: installed clayhook check exited $?"; exit 1; }
echo "$out"
grep -q "hello  loaded: hello 1.0.0, ABI 1.1" <<<"$out" || { echo "FAIL: hello not loaded"; exit 1; }
grep -q "sink  loaded: jsonl-sink" <<<"$out" || { echo "FAIL: installed bundled plugin not found"; exit 1; }
echo "PASS: out-of-tree plugin built against the installed SDK and loaded"
