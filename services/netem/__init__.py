"""The netem service."""
