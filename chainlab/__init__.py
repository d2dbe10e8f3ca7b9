"""chainlab: a testbed for blockchain-based decentralized machine learning."""
