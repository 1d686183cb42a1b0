#!/usr/bin/env bash
# Podman's Docker-compatible API for the agent's container runtime (docs/deployments.md, "Container
# runtime"): the agent talks to it over a unix socket, as it would to a Docker Engine.
#
#   deploy/podman/service.sh [--socket /run/cloudlunacy/podman.sock] [--root DIR --runroot DIR]
#
# Runs in the foreground (a systemd unit or a supervisor keeps it). Root-only: the socket is 0600.
set -euo pipefail

socket=/run/cloudlunacy/podman.sock
storage=()
while [ $# -gt 0 ]; do
  case $1 in
    --socket) socket=$2; shift 2 ;;
    --root | --runroot) storage+=("$1" "$2"); shift 2 ;;
    *) echo "unknown option: $1 (--socket, --root, --runroot)" >&2; exit 2 ;;
  esac
done
if ! command -v podman >/dev/null; then
  echo "podman is not installed: apt-get install -y podman (Debian 12 ships 4.3)" >&2
  exit 1
fi
mkdir -p "$(dirname "$socket")"
chmod 0700 "$(dirname "$socket")"
umask 077
run=(podman "${storage[@]}" system service --time=0 "unix://$socket")
# A hybrid cgroup layout (v1 controllers beside an empty v2 hierarchy at /sys/fs/cgroup/unified) makes
# crun refuse every container ("cgroups in hybrid mode not supported"): in a private mount namespace of
# its own the service does not see the v2 mount. Hosts with cgroup v2 only (Debian 12's default) need
# nothing of this.
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
  echo "hybrid cgroups: running the service in a private mount namespace without /sys/fs/cgroup/unified" >&2
  exec unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh "${run[@]}"
fi
exec "${run[@]}"
