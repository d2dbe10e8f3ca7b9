"""BagChain's spec: config, deployment, summary and queries. Reached only through the protocol registry."""
