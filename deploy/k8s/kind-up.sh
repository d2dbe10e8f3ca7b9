#!/usr/bin/env bash
# `make kind-up`: a kind cluster (deploy/kind/cluster.yaml; GPU=1: nvkind with deploy/kind/nvkind-template.yaml
# and the NVIDIA GPU operator), the images loaded into its nodes, optional monitoring and chaos, chainlab.
# Written for a machine with internet, docker, kind, kubectl and helm (and nvkind with GPU=1).
# shellcheck source=deploy/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=${CLUSTER:-chainlab}
GPU_OPERATOR_VERSION=${GPU_OPERATOR_VERSION:-v25.3.0}
need kind kubectl "$HELM" "$DOCKER_CLI" python3
if [ "$GPU" = 1 ]; then need nvkind; fi

archive=$(build_and_save_images)

if on_cluster_docker kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists: reusing it"
elif [ "$GPU" = 1 ]; then
    log "nvkind cluster $CLUSTER (GPUs on its second worker)"
    on_cluster_docker nvkind cluster create --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} \
        --config-template "$ROOT/deploy/kind/nvkind-template.yaml"
else
    log "kind cluster $CLUSTER"
    on_cluster_docker kind create cluster --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} \
        --config "$ROOT/deploy/kind/cluster.yaml" --wait 5m
fi
kubectl config use-context "kind-$CLUSTER"

log "loading the images into the nodes"
on_cluster_docker kind load image-archive "$archive" --name "$CLUSTER"
rm -f "$archive"

if [ "$GPU" = 1 ]; then
    # As nvkind's README: the operator without driver and toolkit (the host has them); it makes the `nvidia`
    # RuntimeClass and labels GPU nodes, both of which the chart's gpu values select.
    log "NVIDIA GPU operator $GPU_OPERATOR_VERSION"
    kubectl create namespace gpu-operator --dry-run=client -o yaml | kubectl apply -f -
    kubectl label namespace gpu-operator pod-security.kubernetes.io/enforce=privileged --overwrite
    "$HELM" repo add nvidia https://helm.ngc.nvidia.com/nvidia --force-update
    "$HELM" upgrade --install gpu-operator nvidia/gpu-operator --version "$GPU_OPERATOR_VERSION" \
        --namespace gpu-operator --wait --timeout 15m \
        --set cdi.enabled=true --set driver.enabled=false --set toolkit.enabled=false --set operator.runtimeClass=nvidia
fi

install_addons
install_chainlab "$ROOT/deploy/kind/values.yaml"
next_steps
