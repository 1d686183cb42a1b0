#!/usr/bin/env bash
# An image made of programs installed on this host and the libraries they load, for VPSs (and tests)
# that reach no registry: `podman import` of a root file system built here, no base image needed.
#
#   deploy/podman/image-from-host.sh [--root DIR --runroot DIR] <tag> <program>...
#
# e.g. deploy/podman/image-from-host.sh localhost/cloudlunacy/redis:7 redis-server redis-cli
# Each program lands at /usr/bin/<name> (links resolved), with /etc/passwd, /tmp and /data.
set -euo pipefail

storage=()
while [ $# -gt 0 ]; do
  case $1 in
    --root | --runroot) storage+=("$1" "$2"); shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--root DIR --runroot DIR] <tag> <program>..." >&2; exit 2; }
tag=$1
shift
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/data"
install -d -m 1777 "$rootfs/tmp"
for program in "$@"; do
  path=$(command -v "$program") || { echo "$program is not installed here" >&2; exit 1; }
  real=$(readlink -f "$path")
  cp "$real" "$rootfs/usr/bin/$program"
  for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
done
printf 'root:x:0:0::/root:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -c . | podman "${storage[@]}" import --quiet - "$tag"
