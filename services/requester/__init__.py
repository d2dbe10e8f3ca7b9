"""The requester service."""
