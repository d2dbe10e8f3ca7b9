# shellcheck shell=bash
# Shared by kind-up.sh and minikube-up.sh (sourced, not run). Written for a machine with internet and docker.
# Knobs (environment): RELEASE, NAMESPACE, MONITORING=1, CHAOS=1, LOCUST=1, GPU=1, IMAGES=skip, HELM, VALUES
# (one more values file), KPS_VERSION, CHAOS_MESH_VERSION, CLUSTER_DOCKER_HOST, PSA_LEVEL.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RELEASE=${RELEASE:-chainlab}
NAMESPACE=${NAMESPACE:-chainlab}
MONITORING=${MONITORING:-0}
CHAOS=${CHAOS:-0}
LOCUST=${LOCUST:-0}
GPU=${GPU:-0}
IMAGES=${IMAGES:-build}
VALUES=${VALUES:-}
# Pinned charts: bump deliberately, after a run on a real cluster.
KPS_VERSION=${KPS_VERSION:-92.11.0}
CHAOS_MESH_VERSION=${CHAOS_MESH_VERSION:-2.8.2}
# The images are built in the daemon `make images` uses (DOCKER_HOST, exported by the Makefile, may name its own
# dockerd); the cluster runs on the user's docker: CLUSTER_DOCKER_HOST, else docker's default socket.
BUILD_DOCKER_HOST=${DOCKER_HOST:-}
CLUSTER_DOCKER_HOST=${CLUSTER_DOCKER_HOST:-}
DOCKER_CLI=${CHAINLAB_DOCKER:-docker}
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("'"$ROOT"'/pyproject.toml", "rb"))["project"]["version"])')

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if [ -z "${HELM:-}" ]; then
    if command -v helm >/dev/null; then HELM=helm; else HELM="$ROOT/tools/helm/bin/helm"; fi
fi

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not on PATH (see deploy/k8s/README.md, step 0)"
    done
}

# Run a command against the cluster's docker daemon, not the image build's.
on_cluster_docker() {
    if [ -n "$CLUSTER_DOCKER_HOST" ]; then DOCKER_HOST="$CLUSTER_DOCKER_HOST" "$@"; else env -u DOCKER_HOST "$@"; fi
}

# The image references of this version, by kind (node, slim; node-gpu with GPU=1).
image_refs() {
    local refs="chainlab/node:$VERSION chainlab/slim:$VERSION"
    if [ "$GPU" = 1 ]; then refs="$refs chainlab/node-gpu:$VERSION"; fi
    echo "$refs"
}

# Build the images (unless IMAGES=skip) and save them to one archive that kind or minikube loads, whichever
# daemon built them. Prints the archive's path.
build_and_save_images() {
    local archive
    if [ "$IMAGES" != skip ]; then
        log "building the images (make images$([ "$GPU" = 1 ] && echo ' images-gpu'))"
        make -C "$ROOT" images >&2
        if [ "$GPU" = 1 ]; then make -C "$ROOT" images-gpu >&2; fi
    fi
    archive=$(mktemp -d)/chainlab-images.tar
    log "saving $(image_refs) to $archive"
    # shellcheck disable=SC2046  # one argument per image reference
    DOCKER_HOST="$BUILD_DOCKER_HOST" "$DOCKER_CLI" save -o "$archive" $(image_refs) >&2
    echo "$archive"
}

# kube-prometheus-stack (MONITORING=1) and Chaos Mesh (CHAOS=1), pinned, each in its own namespace.
install_addons() {
    local runtime socket
    if [ "$MONITORING" = 1 ]; then
        log "kube-prometheus-stack $KPS_VERSION in namespace monitoring"
        "$HELM" repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
        "$HELM" upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
            --version "$KPS_VERSION" --namespace monitoring --create-namespace --wait --timeout 15m \
            -f "$ROOT/deploy/k8s/kube-prometheus-stack-values.yaml"
    fi
    if [ "$CHAOS" = 1 ]; then
        # chaos-daemon talks to the node's container runtime: containerd on kind, docker on minikube's default.
        runtime=$(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.containerRuntimeVersion}')
        case "$runtime" in
            containerd://*) runtime=containerd; socket=/run/containerd/containerd.sock ;;
            docker://*) runtime=docker; socket=/var/run/docker.sock ;;
            cri-o://*) runtime=crio; socket=/var/run/crio/crio.sock ;;
            *) die "unknown container runtime $runtime for Chaos Mesh" ;;
        esac
        log "Chaos Mesh $CHAOS_MESH_VERSION in namespace chaos-mesh ($runtime)"
        "$HELM" repo add chaos-mesh https://charts.chaos-mesh.org --force-update
        "$HELM" upgrade --install chaos-mesh chaos-mesh/chaos-mesh --version "$CHAOS_MESH_VERSION" \
            --namespace chaos-mesh --create-namespace --wait --timeout 10m \
            --set chaosDaemon.runtime="$runtime" --set chaosDaemon.socketPath="$socket"
    fi
}

# The chainlab release. No --wait: the node pods mount the plan ConfigMap that the post-install hook (the loader
# Job) writes, so they cannot be ready before the hooks run; helm itself waits for the hook Job to finish.
install_chainlab() {
    local platform_values=$1 args=()
    args+=(-f "$platform_values")
    if [ "$MONITORING" = 1 ]; then args+=(--set monitoring.enabled=true --set monitoring.prometheusRelease=kube-prometheus-stack); fi
    if [ "$CHAOS" = 1 ]; then args+=(-f "$ROOT/deploy/k8s/chaos-values.yaml"); fi
    if [ "$LOCUST" = 1 ]; then args+=(--set locust.enabled=true); fi
    if [ "$GPU" = 1 ]; then args+=(--set gpu.enabled=true); fi
    if [ -n "$VALUES" ]; then args+=(-f "$VALUES"); fi
    log "namespace $NAMESPACE, Pod Security ${PSA_LEVEL:-restricted}"
    kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
    # NET_ADMIN (netem.kernelShaping) is outside every Pod Security level but privileged: set PSA_LEVEL=privileged.
    kubectl label namespace "$NAMESPACE" --overwrite \
        "pod-security.kubernetes.io/enforce=${PSA_LEVEL:-restricted}" "pod-security.kubernetes.io/warn=restricted"
    log "helm upgrade --install $RELEASE helm/chainlab (images tag $VERSION)"
    "$HELM" upgrade --install "$RELEASE" "$ROOT/helm/chainlab" --namespace "$NAMESPACE" \
        --set images.tag="$VERSION" "${args[@]}" --timeout 20m
    log "waiting for the node pods to be ready"
    kubectl -n "$NAMESPACE" wait pod --for=condition=Ready --timeout=15m \
        -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component in (miner,validator,requester)"
}

next_steps() {
    local chainlab=${CHAINLAB:-chainlab}
    if [ -z "${CHAINLAB:-}" ] && [ -x "$ROOT/.venv/bin/chainlab" ]; then chainlab="$ROOT/.venv/bin/chainlab"; fi
    "$chainlab" k8s status --release "$RELEASE" -n "$NAMESPACE" || true
    cat >&2 <<NEXT

chainlab is running. Next:
  helm test $RELEASE -n $NAMESPACE --logs          # first Key Block reached, nodes agree on the tip
  $chainlab k8s status  --release $RELEASE -n $NAMESPACE
  $chainlab k8s results --release $RELEASE -n $NAMESPACE --out results.json
  kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80      # MONITORING=1
NEXT
}
