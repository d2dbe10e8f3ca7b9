"""The Prometheus metrics every chainlab service exports (DESIGN.md section 7); one definition each."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

# Training, evaluation and Key Block intervals run from sub-second (digits) to many minutes (CNNs on CPU).
_LONG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_SECONDS = Histogram(
    "chainlab_grpc_request_seconds", "gRPC handling time by service, method and status code",
    ["service", "method", "code"], buckets=_RPC_BUCKETS,
)  # fmt: skip
GRPC_REFUSALS = Counter(
    "chainlab_grpc_refusals_total", "gRPC calls answered with an error, by service, method, status and reason",
    ["service", "method", "code", "reason"],
)  # fmt: skip
BLOCKS_ACCEPTED = Counter("chainlab_blocks_accepted_total", "Blocks accepted, by kind", ["kind"])
BLOCK_REJECTIONS = Counter(
    "chainlab_block_rejections_total", "Messages and blocks rejected or dropped, by kind and reason", ["kind", "reason"]
)
CHAIN_HEIGHT = Gauge("chainlab_chain_height", "Height of this node's best chain")
# One series at 1 per node, labelled with its tip (16 hex digits): count(count by (tip) (...)) is how many tips
# the voting nodes hold. Light clients (votes=false) export none, as they do not vote on agreement.
CHAIN_TIP = Gauge("chainlab_chain_tip", "1 for this node's best-chain tip (voting nodes only)", ["tip"])
CHAIN_FORKS = Gauge("chainlab_chain_forks", "Blocks this node accepted that are off its best chain")
ROUND = Gauge("chainlab_round", "The protocol round this node's clock is in")
KEY_BLOCK_INTERVAL = Histogram(
    "chainlab_key_block_interval_seconds", "Wall time between consecutive best-chain heads", buckets=_LONG_BUCKETS
)
JOB_SECONDS = Histogram(
    "chainlab_job_seconds", "Time a job took, by job (TrainModel, EvaluateEnsemble, Mine, ...)", ["job"],
    buckets=_LONG_BUCKETS,
)  # fmt: skip
INTERNAL_ERRORS = Counter(
    "chainlab_internal_errors_total", "Jobs that failed inside this process (retried; never a peer's fault)", ["job"]
)
# Which protocol, role and node this process runs: join on it (`* on(instance) group_left(protocol)
# chainlab_node_info`) to split any metric by protocol, the usual Prometheus way of adding constant labels.
NODE_INFO = Info("chainlab_node", "What this service process runs: protocol, role and node name")
PROTOCOL_CPU = Gauge("chainlab_protocol_cpu_seconds", "CPU time in the protocol core since the node started")
CODEC_CPU = Gauge("chainlab_codec_cpu_seconds", "CPU time encoding and decoding wire messages since the node started")
POW_CPU = Gauge("chainlab_pow_cpu_seconds", "CPU time of proof-of-work trials since the node started")
PROCESS_CPU = Gauge("chainlab_node_process_cpu_seconds", "CPU time of the whole process since the node started")
ML_SECONDS = Gauge("chainlab_ml_seconds", "Wall time of this node's ML jobs (training, evaluation) since it started")
PREDICTED_SAMPLES = Counter("chainlab_predicted_samples_total", "Samples labelled by the requester's Predict")
GOSSIP_BYTES = Counter("chainlab_gossip_bytes_total", "Gossip payload bytes, by direction", ["direction"])
GOSSIP_MESSAGES = Counter("chainlab_gossip_messages_total", "Gossip messages, by direction", ["direction"])
# results.json's wire_bytes as this node counts it (chainlab.network.wire_bytes): read at each scrape, so a gauge
# that only grows while the node lives; rate() over it is the node's inbound traffic by kind.
WIRE_BYTES = Gauge(
    "chainlab_wire_bytes", "Bytes that reached this node since it started: payload, control or served", ["kind"]
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Start the /metrics HTTP endpoint on a daemon thread; port 0 picks a free one. Returns the port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


# --- netem sidecar (peer labels are short hex node IDs: one series per neighbour) ---
NETEM_MESSAGES = Counter(
    "chainlab_netem_messages_total",
    "Gossip messages by link and outcome: sent, dropped (loss or cut link), failed (peer call), duplicate, delivered",
    ["peer", "outcome"],
)
NETEM_BYTES = Counter("chainlab_netem_bytes_total", "Gossip payload bytes sent on a link", ["peer"])
NETEM_LINK_UP = Gauge("chainlab_netem_link_up", "1 while the link to a peer carries messages, else 0", ["peer"])
NETEM_NODE_REJECTIONS = Counter(
    "chainlab_netem_node_rejections_total", "Deliveries the sidecar's own node refused, by reason", ["reason"]
)
NETEM_FETCHES = Counter("chainlab_netem_fetches_total", "Fetches this sidecar routed, by outcome", ["outcome"])
NETEM_KERNEL_FAILURES = Counter(
    "chainlab_netem_kernel_failures_total", "Kernel shaping rules not applied, by action (set_link, partition, heal)",
    ["action"],
)  # fmt: skip

# Storage service (services/storage).
STORAGE_BYTES = Counter("chainlab_storage_bytes_total", "Object bytes stored (put) and served (get)", ["op"])
STORAGE_OBJECTS = Counter(
    "chainlab_storage_objects_total", "Storage operations that succeeded, by op (put, get, pin, unpin, stat)", ["op"]
)
STORAGE_PINNED = Gauge("chainlab_storage_pinned_objects", "Objects pinned through this storage service since it began")
