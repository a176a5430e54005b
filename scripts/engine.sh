#!/usr/bin/env bash
# A container engine for the end-to-end tests: podman serving Docker's API, and a registry on loopback.
#
#   bash scripts/engine.sh up     install (Debian packages), configure and start; idempotent
#   bash scripts/engine.sh env    print the exports that point Docker clients at it (eval "$(... env)")
#   bash scripts/engine.sh down   stop the API service and the registry
#
# Needs root and Debian's packages (podman runc buildah debootstrap docker-registry). No public registry
# is reached: the registry on loopback also serves as docker.io's mirror, and it holds a TEST STAND-IN for
# the Dockerfile's base image (Debian's Python 3.11 from debootstrap, tagged with the base image's name).
# Production builds pull the real base image; the stand-in exists only on the machine that runs the tests.
#
# State lives in $ENGINE_DIR (default /tmp/knack-engine); the stand-in is built once and cached as a
# tarball in $ENGINE_CACHE (default ~/.cache/knack-services). The registry listens on 127.0.0.1:$ENGINE_PORT
# (default 5055).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE_DIR=${ENGINE_DIR:-/tmp/knack-engine}
ENGINE_CACHE=${ENGINE_CACHE:-$HOME/.cache/knack-services}
ENGINE_PORT=${ENGINE_PORT:-5055}
REGISTRY="127.0.0.1:$ENGINE_PORT"
SOCK="$ENGINE_DIR/podman.sock"
PACKAGES=(podman runc buildah debootstrap docker-registry)
MARK="# written by knack-services scripts/engine.sh"

say() { echo "engine: $*" >&2; }
fail() { echo "engine: FAILED at: $1" >&2; shift; for line in "$@"; do echo "  $line" >&2; done; exit 1; }

base_image() {  # the Dockerfile's base image, e.g. python:3.11.14-slim-bookworm
  awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

api_up() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

registry_up() { curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null 2>&1; }

wait_for() {  # wait_for <what> <check command...>
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" && return 0; sleep 0.5; done
  return 1
}

install_packages() {
  local missing=()
  for cmd in podman runc buildah debootstrap docker-registry curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || fail "packages" "missing: ${missing[*]}; installing them needs root" \
    "run as root, or: apt-get install -y ${PACKAGES[*]} curl"
  command -v apt-get >/dev/null || fail "packages" "missing: ${missing[*]} and no apt-get (Debian or Ubuntu needed)"
  say "installing ${PACKAGES[*]} (apt-get)"
  apt-get update -qq || fail "packages" "apt-get update failed: is a Debian mirror reachable?"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" curl >/dev/null \
    || fail "packages" "apt-get install ${PACKAGES[*]} failed (see its output above)"
}

write_config() {
  [[ $(id -u) -eq 0 ]] || fail "config" "writing /etc/containers needs root" "run scripts/engine.sh up as root"
  local nofile
  nofile=$(ulimit -Hn)
  [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
  local conf=/etc/containers/containers.conf
  if [[ -f $conf ]] && ! grep -qF "$MARK" "$conf"; then
    say "keeping a copy of the existing $conf as $conf.orig"
    cp -n "$conf" "$conf.orig"
  fi
  # runc: crun refuses a machine with cgroups v1 and v2 mounted at once. The ulimits stay within this
  # machine's hard limits (root may lack CAP_SYS_RESOURCE; podman's default nofile would fail).
  cat > "$conf" <<EOF
$MARK
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
events_logger = "file"
EOF
  mkdir -p /etc/containers/registries.conf.d
  cat > /etc/containers/registries.conf.d/knack-engine.conf <<EOF
$MARK
# the loopback registry, also docker.io's mirror (it holds the TEST STAND-IN of the base image)
[[registry]]
location = "$REGISTRY"
insecure = true

[[registry]]
prefix = "docker.io"
location = "$REGISTRY"
insecure = true
EOF
}

start_api() {
  if api_up; then say "API service already answers on $SOCK"; return 0; fi
  say "starting the podman API service on $SOCK"
  rm -f "$SOCK"
  # started from / : a service whose working directory is deleted (a checkout removed after it started
  # the engine) answers every container start with "write child: broken pipe"
  (cd / && exec nohup podman system service --time=0 "unix://$SOCK" >"$ENGINE_DIR/podman.log" 2>&1) &
  echo $! >"$ENGINE_DIR/podman.pid"
  wait_for "API" api_up || fail "podman API service" "no answer on $SOCK; its log:" \
    "$(tail -n 20 "$ENGINE_DIR/podman.log")"
}

start_registry() {
  if registry_up; then say "registry already answers on $REGISTRY"; return 0; fi
  say "starting the loopback registry on $REGISTRY"
  mkdir -p "$ENGINE_DIR/registry"
  cat >"$ENGINE_DIR/registry.yml" <<EOF
version: 0.1
log: {level: info}  # one line per request: the tests count pushes from it
storage: {filesystem: {rootdirectory: $ENGINE_DIR/registry}, delete: {enabled: true}}
http: {addr: $REGISTRY}
EOF
  (cd / && exec nohup docker-registry serve "$ENGINE_DIR/registry.yml" >"$ENGINE_DIR/registry.log" 2>&1) &
  echo $! >"$ENGINE_DIR/registry.pid"
  wait_for "registry" registry_up || fail "registry" "no answer on http://$REGISTRY/v2/ (port taken? set ENGINE_PORT)" \
    "$(tail -n 20 "$ENGINE_DIR/registry.log")"
}

build_stand_in() {  # build_stand_in <image> <tarball>: debootstrap's Debian Python, as the TEST STAND-IN
  local image=$1 tarball=$2 rootfs="$ENGINE_DIR/stand-in-rootfs"
  say "building a TEST STAND-IN for $image from Debian packages (debootstrap, one to two minutes; cached)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3.11,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >"$ENGINE_DIR/debootstrap.log" 2>&1 \
    || fail "base image stand-in (debootstrap)" "see $ENGINE_DIR/debootstrap.log" "$(tail -n 5 "$ENGINE_DIR/debootstrap.log")"
  rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  # pip installed from Debian's bundled wheel (Debian disables ensurepip) lands in /usr/local, as in the
  # official image, where the Dockerfile's `pip uninstall` removes it
  chroot "$rootfs" /bin/sh -c 'w=$(ls /usr/share/python-wheels/pip-*.whl) && /usr/bin/python3.11 "$w/pip" install \
    --no-index --no-cache-dir --no-warn-script-location "$w"' >>"$ENGINE_DIR/debootstrap.log" 2>&1 \
    || fail "base image stand-in (pip)" "see $ENGINE_DIR/debootstrap.log"
  [[ -x $rootfs/usr/local/bin/pip ]] || ln -sf pip3 "$rootfs/usr/local/bin/pip"
  # this machine's certificate store (its TLS may be inspected), so the build's downloads verify
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  local c m
  c=$(buildah from scratch)
  m=$(buildah mount "$c")
  cp -a "$rootfs/." "$m/"
  buildah umount "$c" >/dev/null
  buildah config --label "org.knack-services.test-stand-in=true" \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env UV_NATIVE_TLS=1 --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$c"
  buildah commit -q "$c" "$image" >/dev/null
  buildah rm "$c" >/dev/null
  rm -rf "$rootfs"
  mkdir -p "$(dirname "$tarball")"
  podman save -q -o "$tarball.part" "$image" && mv "$tarball.part" "$tarball"
  say "cached the TEST STAND-IN as $tarball"
}

provide_base() {
  local base repo tag image tarball
  base=$(base_image)
  [[ -n $base ]] || fail "base image" "no FROM line in Dockerfile"
  repo=${base%%:*}; tag=${base#*:}
  [[ $repo == */* ]] || repo="library/$repo"
  if curl -sf --max-time 5 -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json" \
       -H "Accept: application/vnd.docker.distribution.manifest.v2+json" "http://$REGISTRY/v2/$repo/manifests/$tag"; then
    say "the mirror already holds $base (TEST STAND-IN)"
    return 0
  fi
  image="docker.io/$repo:$tag"
  tarball="$ENGINE_CACHE/stand-in-${base//[:\/]/_}.tar"
  if ! podman image exists "$image"; then
    if [[ -f $tarball ]]; then
      say "loading the cached TEST STAND-IN of $base from $tarball"
      podman load -q -i "$tarball" >/dev/null || fail "base image stand-in" "podman load $tarball failed" \
        "delete $tarball and run scripts/engine.sh up again to rebuild it"
    else
      build_stand_in "$image" "$tarball"
    fi
  fi
  say "pushing the TEST STAND-IN of $base to the mirror"
  podman push -q --tls-verify=false "$image" "$REGISTRY/$repo:$tag" \
    || fail "base image stand-in (push)" "podman push to $REGISTRY failed; see $ENGINE_DIR/registry.log"
}

up() {
  install_packages
  mkdir -p "$ENGINE_DIR" "$ENGINE_CACHE"
  write_config
  # a podman database first made with another storage driver refuses overlay; podman says so here
  podman info >/dev/null 2>"$ENGINE_DIR/info.err" || fail "podman info" "$(tail -n 5 "$ENGINE_DIR/info.err")" \
    "if it names the storage driver: rm /var/lib/containers/storage/libpod/bolt_state.db"
  start_api
  start_registry
  provide_base
  say "up: DOCKER_HOST=unix://$SOCK, registry $REGISTRY"
}

stop() {  # stop <name> <pidfile>
  local pidfile=$2
  if alive "$pidfile"; then
    say "stopping $1"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 20); do alive "$pidfile" || break; sleep 0.25; done
  fi
  rm -f "$pidfile"
}

down() {
  stop "the podman API service" "$ENGINE_DIR/podman.pid"
  stop "the registry" "$ENGINE_DIR/registry.pid"
  rm -f "$SOCK"
}

env_out() {
  echo "export DOCKER_HOST=unix://$SOCK"
  echo "export KNACK_ENGINE_REGISTRY=$REGISTRY"
  echo "export KNACK_ENGINE_DIR=$ENGINE_DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_out ;;
  status) api_up && registry_up && echo "engine: up" || { echo "engine: down"; exit 1; } ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
