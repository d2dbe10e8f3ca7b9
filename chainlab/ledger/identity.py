"""Ed25519 node identities: key pairs, node ids and signature checks."""

from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chainlab.ledger.hashing import sha256, short

_SEED_DOMAIN = b"chainlab-identity"


def node_id_of(public_key: bytes) -> bytes:
    """Return the node id of a raw public key: its SHA-256 digest."""
    return sha256(public_key)


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Return True iff ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        # Keys and signatures arrive from untrusted peers, so malformed input is just "invalid".
        return False
    return True


class Identity:
    """An Ed25519 key pair identifying one node."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        # Cached because node ids are looked up constantly and the key never changes.
        self._public_key = private_key.public_key().public_bytes_raw()
        self._node_id = node_id_of(self._public_key)

    @classmethod
    def generate(cls) -> Self:
        """Create a fresh random identity."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """Derive an identity deterministically from arbitrary seed bytes, for reproducible simulations."""
        return cls.from_private_bytes(sha256(_SEED_DOMAIN, seed))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> Self:
        """Load an identity from its 32 raw private key bytes."""
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    @property
    def public_key(self) -> bytes:
        """The 32 raw bytes of the public key."""
        return self._public_key

    @property
    def node_id(self) -> bytes:
        """The SHA-256 digest of the public key."""
        return self._node_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def private_bytes(self) -> bytes:
        """Return the 32 raw bytes of the private key."""
        return self._private_key.private_bytes_raw()

    def __repr__(self) -> str:
        # Never include the private key: identities end up in logs.
        return f"Identity(node_id={short(self._node_id)})"
