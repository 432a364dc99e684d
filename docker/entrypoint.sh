#!/bin/sh
# The isogroup service image's entrypoint (docs/deploy.md).
#
#   entrypoint.sh [serve] [FLAG...]   the dashboard and HTTP API on ISOGROUP_BIND:ISOGROUP_PORT (default 0.0.0.0:7800)
#   entrypoint.sh follow [FLAG...]    reserved for `isogroup follow` (not in this version of isogroup yet)
#   entrypoint.sh COMMAND [ARG...]    any other isogroup command, e.g. `demo`, `groups`, `--version`
#
# Environment: ISOGROUP_STORE (the store URL, required), ISOGROUP_HOST (the log host to show first),
# ISOGROUP_TOKEN (enables POST /api/commands; unset or empty: read-only), ISOGROUP_BIND, ISOGROUP_PORT.
# ISOGROUP_BIN names the isogroup executable (default: isogroup on the PATH).
set -eu

if [ -z "${ISOGROUP_STORE:-}" ]; then
  echo 'isogroup: set ISOGROUP_STORE to the store URL (postgres://…, kurrentdb://…, file:/data/log.jsonl)' >&2
  exit 2
fi
# An empty token (compose's ${ISOGROUP_TOKEN:-}) means read-only, not a 0-character token.
if [ -z "${ISOGROUP_TOKEN:-}" ]; then unset ISOGROUP_TOKEN; fi

command=serve
case "${1:-}" in
  '' | -*) ;;                       # no command, or only flags: serve with them
  *) command=$1; shift ;;
esac

if [ "$command" = serve ]; then
  # In a container the dashboard must listen beyond loopback; publish the port only where you mean to.
  set -- serve --bind "${ISOGROUP_BIND:-0.0.0.0}" --bind-any --port "${ISOGROUP_PORT:-7800}" "$@"
else
  set -- "$command" "$@"
fi
exec "${ISOGROUP_BIN:-isogroup}" "$@"
