"""SHA-256 helpers shared by every ledger structure."""

import hashlib


def sha256(*parts: bytes) -> bytes:
    """Return the SHA-256 digest of the concatenation of ``parts``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def short(digest: bytes) -> str:
    """Return the first 8 hex characters of ``digest``, for logs and tables."""
    return digest.hex()[:8]
