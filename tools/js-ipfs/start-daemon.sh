#!/usr/bin/env bash
# Start a js-ipfs HTTP RPC daemon on loopback that dials nobody: usage start-daemon.sh REPO_DIR API_PORT GATEWAY_PORT.
# Installed by `make test` (npm ci in this folder); the KuboRpc tests run it on free ports with a repo in tmp.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$1" api_port="$2" gateway_port="$3"
mkdir -p "$(dirname "$repo")"
config="$(dirname "$repo")/js-ipfs-init-config.json"
# No swarm listeners, no bootstrap peers, no discovery: the daemon is an RPC front end to a local repo only.
cat > "$config" <<JSON
{
  "Addresses": {
    "Swarm": [],
    "Announce": [],
    "NoAnnounce": [],
    "API": "/ip4/127.0.0.1/tcp/${api_port}",
    "Gateway": "/ip4/127.0.0.1/tcp/${gateway_port}",
    "RPC": "",
    "Delegates": []
  },
  "Bootstrap": [],
  "Discovery": {"MDNS": {"Enabled": false}, "webRTCStar": {"Enabled": false}}
}
JSON
# Node 20 lacks Promise.withResolvers, which js-ipfs 0.66's dependencies call.
export NODE_OPTIONS="--require ${here}/polyfill.cjs ${NODE_OPTIONS:-}"
export IPFS_PATH="$repo"
exec node "${here}/node_modules/ipfs/src/cli.js" daemon --offline --enable-preload=false \
  --init-config "$config"
