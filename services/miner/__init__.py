"""The miner service."""
