import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cid import CIDv0, make_cid  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st
from ipfshttpclient.exceptions import ErrorResponse

from chainlab.live.ipfs import (
    BadCid,
    EmbeddedKubo,
    IpfsBackend,
    KuboRpc,
    UnknownCid,
    cid_key,
    parse_cid,
    unixfs_file_size,
)
from tests.live.jsipfs import jsipfs_daemon

# ipfshttpclient 0.7.0 passes urllib3 2 a deprecated `strict` argument on every request.
pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

# The multihash of nothing this suite ever stores: a well-formed CID that no node here holds.
ABSENT = str(CIDv0(b"\x12\x20" + hashlib.sha256(b"chainlab: never stored").digest()).encode().decode())


def _single_block_cid(data: bytes) -> str:
    """CIDv0 of a small file as `ipfs add` builds it: one dag-pb node wrapping UnixFS {File, data, filesize}."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    unixfs = b"\x08\x02" + b"\x12" + varint(len(data)) + data + b"\x18" + varint(len(data))
    node = b"\x0a" + varint(len(unixfs)) + unixfs
    return str(CIDv0(b"\x12\x20" + hashlib.sha256(node).digest()).encode().decode())


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKubo]:
    node = EmbeddedKubo(tmp_path_factory.mktemp("kubo") / "repo")
    yield node
    node.close()


@pytest.fixture(scope="module")
def rpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboRpc]:
    with jsipfs_daemon(tmp_path_factory.mktemp("jsipfs")) as addr:
        client = KuboRpc(addr, lookup_timeout=0.5)
        yield client
        client.close()


@pytest.fixture(params=["embedded", pytest.param("rpc", marks=pytest.mark.slow)])  # rpc: the js-ipfs daemon
def backend(request: pytest.FixtureRequest) -> IpfsBackend:
    node: IpfsBackend = request.getfixturevalue(request.param)
    return node


def test_a_large_object_round_trips_and_its_cid_is_real(backend: IpfsBackend) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    cid = backend.add(data, pin=True)
    assert make_cid(cid).version == 0 and make_cid(cid).codec == "dag-pb"
    assert backend.cat(cid) == data
    assert backend.stat(cid) == (len(data), True)


def test_a_small_object_gets_the_cid_ipfs_add_computes(backend: IpfsBackend) -> None:
    data = b"chainlab storage: one block"
    cid = backend.add(data, pin=False)
    assert cid == _single_block_cid(data)
    assert backend.cat(cid) == data
    assert backend.stat(cid) == (len(data), False)


def test_pin_then_unpin_then_stat_shows_unpinned(backend: IpfsBackend) -> None:
    cid = backend.add(os.urandom(300_000), pin=False)
    backend.pin(cid)
    backend.pin(cid)
    assert backend.stat(cid)[1] is True
    backend.unpin(cid)
    backend.unpin(cid)  # already unpinned: a no-op
    assert backend.stat(cid)[1] is False


def test_adding_unpinned_keeps_an_existing_pin(backend: IpfsBackend) -> None:
    data = os.urandom(10_000)
    cid = backend.add(data, pin=True)
    assert backend.add(data, pin=False) == cid
    assert backend.stat(cid)[1] is True


def test_the_v1_spelling_names_the_same_object(backend: IpfsBackend) -> None:
    cid = backend.add(b"spelled two ways", pin=True)
    v1 = make_cid(cid).to_v1().encode("base32").decode()
    assert v1.startswith("bafy") and cid_key(v1) == cid_key(cid)
    assert backend.cat(v1) == b"spelled two ways"


def test_an_unknown_cid_is_unknown_without_a_network_search(backend: IpfsBackend) -> None:
    for call in (backend.cat, backend.stat, backend.pin, backend.unpin):
        with pytest.raises(UnknownCid, match=ABSENT) as caught:
            call(ABSENT)
        if isinstance(backend, KuboRpc):
            # The daemon's own lookup timeout ended the search and it answered; our HTTP client's timeout would
            # have raised BackendUnavailable instead.
            assert isinstance(caught.value.__cause__, ErrorResponse)
        else:
            # Kubo is never asked (it would search forever without routing): the local blockstore answered.
            assert caught.value.__cause__ is None
    # Nobody was there to search: the node has no peers, so no block could be asked for or received.
    if isinstance(backend, KuboRpc):
        bitswap = backend.client.bitswap.stat()
        assert backend.client.swarm.peers()["Peers"] == [] and bitswap["Peers"] == []
        assert int(bitswap["BlocksReceived"]) == 0 and int(bitswap["DataReceived"]) == 0
    else:
        assert isinstance(backend, EmbeddedKubo) and backend.peers() == []


@pytest.mark.slow
def test_both_backends_compute_the_same_cid(embedded: EmbeddedKubo, rpc: KuboRpc) -> None:
    data = os.urandom(700_000)  # three 256 KiB chunks: a real DAG, not a single block
    assert embedded.add(data, pin=False) == rpc.add(data, pin=False)


@pytest.mark.parametrize("text", ["", "hello", "Qm123", "bafy" + "a" * 55, "Qm" + "0" * 44, "x" * 1000])
def test_garbage_is_not_a_cid(text: str) -> None:
    with pytest.raises(BadCid):
        parse_cid(text)


@given(st.text(max_size=80))
def test_parse_cid_refuses_with_bad_cid_only(text: str) -> None:
    with contextlib.suppress(BadCid):
        assert parse_cid(text) == text.strip()


def test_a_directory_is_not_an_object() -> None:
    directory = b"\x0a\x02\x08\x01"  # dag-pb node whose UnixFS type is Directory
    with pytest.raises(Exception, match="not_a_file"):
        unixfs_file_size(ABSENT, directory)


def test_the_embedded_node_dials_nobody(embedded: EmbeddedKubo) -> None:
    config = embedded.config()
    assert config["Bootstrap"] == []
    assert config["Routing"]["Type"] == "none"
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    # A sleep cannot show that a dial never happens; what the node may dial is fixed by the config it started with,
    # so every source of a dial is checked to be off: bootstrap, peering, MDNS, routing, relays, NAT traversal.
    assert config["Peering"]["Peers"] == []
    assert config["Swarm"]["RelayClient"]["Enabled"] is False and config["Swarm"]["RelayService"]["Enabled"] is False
    assert config["Swarm"]["DisableNatPortMap"] is True and config["AutoNAT"]["ServiceMode"] == "disabled"
    assert config["Addresses"]["Announce"] == [] and config["Addresses"]["AppendAnnounce"] == []
    assert all(addr.startswith("/ip4/127.0.0.1/") for addr in config["Addresses"]["Swarm"])
    assert embedded.listen_addresses() and all(a.startswith("/ip4/127.0.0.1/") for a in embedded.listen_addresses())
    embedded.add(os.urandom(1000), pin=True)
    # And now, after it has stored something: connected to nobody, no socket to anything beyond loopback.
    assert embedded.peers() == []
    for conn in psutil.Process().net_connections(kind="inet"):
        if conn.raddr:
            assert conn.raddr.ip in ("127.0.0.1", "::1"), conn


def test_the_embedded_repo_survives_a_restart(tmp_path: Path) -> None:
    node = EmbeddedKubo(tmp_path / "repo")
    cid = node.add(b"kept across restarts", pin=True)
    node.close()
    again = EmbeddedKubo(tmp_path / "repo")
    try:
        assert again.cat(cid) == b"kept across restarts"
        assert again.stat(cid) == (len(b"kept across restarts"), True)
    finally:
        again.close()
