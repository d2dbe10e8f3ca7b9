"""Content identifiers: the CIDv1 (raw codec, SHA-256 multihash, base32) IPFS gives content stored as one block."""

from __future__ import annotations

import base64
import hashlib

_CID_V1 = b"\x01"
_RAW = b"\x55"  # multicodec: raw bytes
_SHA2_256 = b"\x12\x20"  # multihash: sha2-256, 32 bytes


def raw_cid(content: bytes) -> str:
    """content's CIDv1 with the raw codec: `ipfs add --cid-version 1 --raw-leaves` gives the same for content that
    fits one block (256 KiB by default); larger content gets a different (DAG) CID there."""
    binary = _CID_V1 + _RAW + _SHA2_256 + hashlib.sha256(content).digest()
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")
