#!/usr/bin/env bash
# `make minikube-up`: a minikube cluster (docker driver; GPU=1: `--gpus all`), the images loaded with
# `minikube image load`, optional monitoring and chaos, chainlab. Written for a machine with internet, docker,
# minikube, kubectl and helm.
# shellcheck source=deploy/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE=${PROFILE:-chainlab}
need minikube kubectl "$HELM" "$DOCKER_CLI" python3

archive=$(build_and_save_images)

if on_cluster_docker minikube status -p "$PROFILE" >/dev/null 2>&1; then
    log "minikube profile $PROFILE is running: reusing it"
else
    start=(start -p "$PROFILE" --driver=docker --cpus="${MINIKUBE_CPUS:-4}" --memory="${MINIKUBE_MEMORY:-8g}")
    # --gpus needs the docker driver and runtime; it enables minikube's nvidia-device-plugin addon.
    if [ "$GPU" = 1 ]; then start+=(--container-runtime=docker --gpus=all); fi
    # Calico enforces the chart's NetworkPolicies (minikube's default bridge CNI ignores them).
    if [ "${NETPOL:-1}" = 1 ]; then start+=(--cni=calico); fi
    log "minikube ${start[*]}"
    on_cluster_docker minikube "${start[@]}"
fi
kubectl config use-context "$PROFILE"

log "loading the images into minikube"
on_cluster_docker minikube -p "$PROFILE" image load "$archive"
rm -f "$archive"

platform_values="$ROOT/deploy/minikube/values.yaml"
if [ "$GPU" = 1 ]; then
    # minikube's device plugin advertises nvidia.com/gpu but sets no node label and no RuntimeClass: docker's
    # default runtime is already nvidia's, so the miners need only the limit (deploy/minikube/gpu-values.yaml).
    kubectl label node "$PROFILE" nvidia.com/gpu.present=true --overwrite
    VALUES=${VALUES:-$ROOT/deploy/minikube/gpu-values.yaml}
fi
install_addons
install_chainlab "$platform_values"
next_steps
