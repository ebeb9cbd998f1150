#!/usr/bin/env bash
# Ensure the system tools Hearth needs are installed. Idempotent and quick
# when everything is already present (apt-get is not touched in that case).
#
#   scripts/ensure-deps.sh [--with-buf] [--with-lint-tools]
#
# Always:            Postgres server binaries (initdb/postgres/pgbench),
#                    nats-server, a C compiler (cc) and make.
# --with-buf:        node/npm, then buf (npm @bufbuild/buf) into ./.tools/
# --with-lint-tools: rustfmt and clippy (via rustup)
#
# protoc is not needed: it is vendored by the build (protoc-bin-vendored).
set -euo pipefail

BUF_VERSION="1.75.0" # npm view @bufbuild/buf version

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$ROOT/.tools"
BUF="$TOOLS_DIR/node_modules/.bin/buf"
# Run from the repo root so a rust-toolchain file (if any) picks the toolchain.
cd "$ROOT"

with_buf=0
with_lint=0
for arg in "$@"; do
  case "$arg" in
    --with-buf) with_buf=1 ;;
    --with-lint-tools) with_lint=1 ;;
    -h | --help)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "ensure-deps: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

installed_any=0
note() {
  echo "ensure-deps: $*"
  installed_any=1
}
die() {
  echo "ensure-deps: error: $*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- apt helpers ------------------------------------------------------------
SUDO=""
apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || die "need to install '$*' but not root and sudo is not available; install it manually or re-run as root"
    SUDO=sudo
  fi
  have apt-get || die "need to install '$*' but apt-get is not available; install it manually"
  # sudo resets the environment, so pass DEBIAN_FRONTEND through env(1).
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
  [ -z "$SUDO" ] || apt=("$SUDO" "${apt[@]}")
  if [ "$apt_updated" -eq 0 ]; then
    "${apt[@]}" update >/dev/null
    apt_updated=1
  fi
  "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null
}

# --- Postgres server binaries -----------------------------------------------
have_postgres() {
  local p
  for p in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$p" ] && return 0
  done
  if have pg_config; then
    local bindir
    bindir="$(pg_config --bindir 2>/dev/null || true)"
    [ -n "$bindir" ] && [ -x "$bindir/postgres" ] && return 0
  fi
  return 1
}
if ! have_postgres; then
  # On Debian/Ubuntu the versioned server package (pulled in by `postgresql`)
  # ships postgres, initdb, pg_ctl and pgbench under /usr/lib/postgresql/N/bin.
  # The package also creates and starts a default cluster on port 5432; we do
  # not use it (the dev tool and tests run private instances) and leave it be.
  # If a policy-rc.d forbids starting services, that is fine too.
  note "installing postgresql"
  apt_install postgresql
  have_postgres || die "postgresql installed but no postgres binary found under /usr/lib/postgresql/*/bin"
fi

# --- NATS server --------------------------------------------------------------
if ! have nats-server && [ ! -x /usr/sbin/nats-server ]; then
  note "installing nats-server"
  apt_install nats-server
fi

# --- C toolchain (for crates with build scripts that compile C) --------------
if ! have cc || ! have make; then
  note "installing build-essential"
  apt_install build-essential
fi

# --- buf (via npm, repo-local) -----------------------------------------------
buf_ok() {
  [ -x "$BUF" ] || return 1
  local v
  v="$("$BUF" --version 2>/dev/null)" || return 1
  [ "$v" = "$BUF_VERSION" ]
}
if [ "$with_buf" -eq 1 ] && ! buf_ok; then
  node_pkgs=()
  have node || node_pkgs+=(nodejs ca-certificates)
  have npm || node_pkgs+=(npm)
  if [ "${#node_pkgs[@]}" -gt 0 ]; then
    note "installing ${node_pkgs[*]}"
    apt_install "${node_pkgs[@]}"
  fi
  note "installing buf $BUF_VERSION into .tools/"
  mkdir -p "$TOOLS_DIR"
  npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --no-update-notifier \
    --loglevel=error "@bufbuild/buf@$BUF_VERSION" >/dev/null
  buf_ok || die "buf was installed but '$BUF --version' does not report $BUF_VERSION"
fi

# --- rustfmt / clippy -----------------------------------------------------------
if [ "$with_lint" -eq 1 ]; then
  missing=()
  cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
  if [ "${#missing[@]}" -gt 0 ]; then
    have rustup || die "${missing[*]} missing and rustup is not available; install them with your Rust toolchain"
    note "installing rust components: ${missing[*]}"
    rustup component add "${missing[@]}" >/dev/null
    cargo fmt --version >/dev/null 2>&1 || die "rustfmt still unavailable after rustup component add"
    cargo clippy --version >/dev/null 2>&1 || die "clippy still unavailable after rustup component add"
  fi
fi

if [ "$installed_any" -eq 0 ]; then
  echo "deps ok"
fi
