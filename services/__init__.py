"""The chainlab services: one deployable process each, wiring the live driver to gRPC."""
