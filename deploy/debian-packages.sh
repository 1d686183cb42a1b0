#!/usr/bin/env bash
# Every Debian package the local stack, the demo and the tests need, in one place. deploy/local/stack.sh,
# `npm test` (its pretest) and .ci/run call it. It installs what is missing with apt-get when it can (as
# root or through sudo) and otherwise says exactly what to install.
#
#   deploy/debian-packages.sh [--check] <group>...    groups: stack, demo, test (test includes the others)
set -euo pipefail

check_only=false
if [ "${1:-}" = "--check" ]; then check_only=true; shift; fi
[ $# -gt 0 ] || set -- test

# command:package, by group.
stack=(nats-server:nats-server haproxy:haproxy openssl:openssl envsubst:gettext-base)
demo=(redis-server:redis-server redis-cli:redis-tools curl:curl)
# The tests drive Chromium (dashboard), wrk (hitless reloads), psql (the database), git (fixtures),
# sshd (git over ssh, on a loopback port of the test's own; the package's service is not started here)
# podman and crun: the container runtime's tests (its Docker-compatible API, deploy/podman/), and
# docker-registry: a registry of their own on a loopback port, to pull images from.
test=("${stack[@]}" "${demo[@]}" chromium:chromium wrk:wrk psql:postgresql-client git:git sshd:openssh-server
  podman:podman crun:crun docker-registry:docker-registry)

wanted=()
for group in "$@"; do
  case $group in
    stack) wanted+=("${stack[@]}") ;;
    demo) wanted+=("${demo[@]}") ;;
    test) wanted+=("${test[@]}") ;;
    *) echo "unknown group: $group (stack, demo or test)" >&2; exit 2 ;;
  esac
done

missing=()
for pair in "${wanted[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# Several commands come from one package (redis-cli and redis-server do not, but be safe).
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi; }

if $check_only || ! command -v apt-get >/dev/null || ! as_root true 2>/dev/null; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
as_root apt-get update -qq >/dev/null
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
