#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster kind-up.sh made (and with it everything installed in it).
# shellcheck source=deploy/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CLUSTER=${CLUSTER:-chainlab}
need kind
on_cluster_docker kind delete cluster --name "$CLUSTER"
