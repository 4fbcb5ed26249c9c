# Shared by the scripts in this folder: sourced, not run.

# Packages needed to build and run the host (Debian 12 names).
CLAYHOOK_RUN_PACKAGES=(g++ cmake ninja-build pkg-config libpoco-dev libyaml-cpp-dev libsqlite3-dev
                       libboost-dev libssl-dev openssl libpq-dev)
# ...and, on top, to build and run the tests; clang, its libFuzzer runtime and
# llvm-symbolizer (for readable stacks) are for the fuzz targets (scripts/fuzz.sh);
# lintian, dpkg-dev, file and systemd (systemd-analyze) for the package test.
CLAYHOOK_TEST_PACKAGES=(catch2 binutils postgresql lintian dpkg-dev file systemd clang-format clang clang-14 libclang-rt-14-dev llvm-14 chromium chromium-driver python3-selenium)

say() { printf '\033[1m[clayhook]\033[0m %s\n' "$*" >&2; }

# ensure_packages PKG...: installs, through apt-get by name, the packages that
# are not installed yet; does nothing when all are there.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  say "installing missing packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# build DIR [cmake options...]: configures (once) and builds with Ninja.
build() {
  local dir=$1; shift
  cmake -S "$CLAYHOOK_ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir"
}

# kept_secret FILE: makes sure FILE holds a secret, and that it survives a
# deleted var/. A copy is kept (mode 0600) under
# ${XDG_STATE_HOME:-~/.local/state}/clayhook/<this checkout>/. When FILE is
# missing and a copy exists, the copy is put back (and said so): a webhook
# registered with Clay under that secret keeps working. Only when neither
# exists is a new one drawn, with a warning about webhooks registered before.
kept_secret() {
  local file=$1 name keep
  name=$(basename "$file")
  keep="${XDG_STATE_HOME:-$HOME/.local/state}/clayhook/$(printf %s "$CLAYHOOK_ROOT" | sha256sum | cut -c1-16)"
  if [ -s "$file" ]; then
    :
  elif [ -s "$keep/$name" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && cp "$keep/$name" "$file")
    say "$file was missing (var/ deleted?): put back the secret this checkout used before, from $keep/$name"
  else
    ensure_secret "$file"
    say "WARNING: $file is a NEW secret: a Clay webhook registered with an earlier one gets 401 until it is updated"
  fi
  if ! cmp -s "$file" "$keep/$name" 2>/dev/null; then
    (umask 077 && mkdir -p "$keep" && cp "$file" "$keep/$name")
  fi
}

# ensure_secret FILE: creates FILE with 32 random bytes in hex, mode 0600,
# unless it exists.
ensure_secret() {
  local file=$1
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  (umask 077 && openssl rand -hex 32 > "$file")
  say "created a random secret in $file (mode 0600)"
}
