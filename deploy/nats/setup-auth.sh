#!/usr/bin/env bash
# Makes a nats-server configuration directory use an installation's generated auth (operator, accounts,
# full resolver): creates the secrets if missing (never overwrites), links auth.conf next to the server
# config (nats-server 2.9 resolves `include` relative to the including file), and prints the
# environment the CLI needs (each service runs with its own CL_NATS_CREDS=<secrets>/nats/<service>.creds).
#
#   deploy/nats/setup-auth.sh <secrets dir> <nats config dir> [<resolver dir>]
#
# Then add `include "cloudlunacy-auth.conf"` to <nats config dir>/<your config>. Run from the
# repository root after `npm run build`. Idempotent.
set -euo pipefail
secrets=$(realpath -m "${1:?secrets dir}")
confdir=$(realpath -m "${2:?nats config dir}")
resolver=$(realpath -m "${3:-$secrets/nats/resolver}")
mkdir -p "$confdir"
node dist/apps/cli/src/main.js init --secrets "$secrets" --nats-resolver-dir "$resolver" >&2
ln -sfn "$secrets/nats/auth.conf" "$confdir/cloudlunacy-auth.conf"
cat <<ENV
CL_SECRETS_DIR=$secrets
CL_NATS_CREDS=$secrets/nats/cli.creds
ENV
