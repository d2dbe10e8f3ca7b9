"""chainlab.v1 wire contracts, generated from proto/chainlab/v1."""
