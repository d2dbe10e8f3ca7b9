"""Monitoring for live runs: a Prometheus server on loopback, its HTTP API, and plots drawn from it."""
