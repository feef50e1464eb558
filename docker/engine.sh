#!/usr/bin/env bash
# A private Docker engine and an offline base image, for machines with no registry access.
#   source docker/engine.sh; engine_up; base_image_offline keras-parity/base:bookworm; ...; engine_down
#   (base_image_offline keras-parity/base:trixie: Python 3.13, for releases that need it)
# engine_up starts dockerd as root with its own data root, exec root and socket, no bridge
# and no iptables (builds and containers run with --network none), and exports DOCKER_HOST.
# Sourced into the caller's shell, so it leaves the shell's options as they are (no `set -e`:
# an interactive shell would close on its first failing command); each function returns 1
# on a failure instead.

ENGINE_DIR=${ENGINE_DIR:-/var/tmp/keras-parity-docker}

engine_up() {
  mkdir -p "$ENGINE_DIR" || return 1
  if [ -S "$ENGINE_DIR/docker.sock" ] && DOCKER_HOST="unix://$ENGINE_DIR/docker.sock" docker version >/dev/null 2>&1; then
    export DOCKER_HOST="unix://$ENGINE_DIR/docker.sock"
    return 0
  fi
  dockerd --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" \
    --host "unix://$ENGINE_DIR/docker.sock" --pidfile "$ENGINE_DIR/dockerd.pid" \
    --bridge=none --iptables=false --ip-masq=false >"$ENGINE_DIR/dockerd.log" 2>&1 &
  export DOCKER_HOST="unix://$ENGINE_DIR/docker.sock"
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "error: dockerd did not start; see $ENGINE_DIR/dockerd.log" >&2
  return 1
}

engine_down() {
  if [ -f "$ENGINE_DIR/dockerd.pid" ]; then
    kill "$(cat "$ENGINE_DIR/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 1 30); do [ -f "$ENGINE_DIR/dockerd.pid" ] || break; sleep 1; done
  fi
}

# Debian with python3 and venv, from Debian's packages only: base_image_offline NAME [SUITE].
# The suite is the one the name's tag gives (keras-parity/base:trixie), else bookworm:
# bookworm has Python 3.11, trixie Python 3.13 (for releases that need 3.12 or later).
base_image_offline() {
  local name=${1:-keras-parity/base:bookworm}
  local suite=${2:-${name##*:}}
  case "$suite" in
    bookworm | trixie) ;;
    *) echo "error: no Debian suite '$suite' for $name; give bookworm (Python 3.11) or trixie (Python 3.13)" >&2; return 1 ;;
  esac
  if docker image inspect "$name" >/dev/null 2>&1; then return 0; fi
  local root
  root=$(mktemp -d /var/tmp/keras-parity-rootfs.XXXXXX) || return 1
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$root" http://deb.debian.org/debian >"$root.log" 2>&1 || { tail -5 "$root.log" >&2; return 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  local status=0
  tar -C "$root" -c . | docker import - "$name" >/dev/null || status=1
  rm -rf "$root" "$root.log"
  return "$status"
}
