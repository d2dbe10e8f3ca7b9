"""Ledger primitives: hashing, identities, Merkle trees, proof-of-work, chain index and block store."""
