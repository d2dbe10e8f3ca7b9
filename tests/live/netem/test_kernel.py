"""Kernel shaping: the rules per peer, the idempotent move to a desired state, the sidecar hook, and measurements
in two network namespaces this test creates and removes (root with iproute2 and iptables only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlab.live import metrics
from chainlab.live.errors import Refusal
from chainlab.live.netem.kernel import (
    CommandResult,
    Endpoint,
    KernelShaper,
    KernelShapingError,
    PeerShaping,
    Runner,
    chain_names,
    desired_state,
    detect_device,
    peer_endpoints,
    peer_rules,
    rate_bits_per_second,
    subprocess_runner,
)
from chainlab.live.netem.links import LinkTable
from chainlab.live.netem.sidecar import ControlServicer, Sidecar
from chainlab.live.netem.topology import LinkSpec, dump_topology, from_edges
from chainlab.proto.v1 import netem_pb2
from chainlab.protocols.errors import RefusalKind
from services.netem import main as netem_main

REPO = Path(__file__).resolve().parents[3]
FIGURES = REPO / "runs" / "kernel-shaping.json"


def _id(i: int) -> bytes:
    return bytes([i + 1]) * 32


A, B, C = _id(0), _id(1), _id(2)
TAG = "0101abcd"
CHAINS = chain_names(TAG)


# --- a model of the kernel's tables, enough to check what the shaper leaves behind ---------------------


@dataclass
class FakeKernel:
    """iptables chains and tc state of one namespace, changed by the argument lists a KernelShaper runs."""

    root: str = "noqueue 0:"
    classes: set[str] = field(default_factory=set)
    filters: dict[int, tuple[str, ...]] = field(default_factory=dict)
    chains: dict[tuple[str, str], list[tuple[str, ...]]] = field(default_factory=dict)
    fail: str | None = None  # a command starting with this text fails
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for family in ("iptables", "ip6tables"):
            for hook in ("INPUT", "OUTPUT"):
                self.chains[(family, hook)] = []

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.root,
            sorted(self.classes),
            sorted(self.filters.items()),
            sorted((key, sorted(rules)) for key, rules in self.chains.items()),
        )

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        if self.fail is not None and " ".join(args).startswith(self.fail):
            return CommandResult(1, "", "Operation not permitted")
        ok, bad = CommandResult(0, "", ""), CommandResult(1, "", "No such file or directory")
        if args[0] in ("iptables", "ip6tables"):
            return self._iptables(args[0], list(args[2:]), ok, bad)
        if args[:3] == ("tc", "qdisc", "show"):
            return CommandResult(0, f"qdisc {self.root} root refcnt 2\n", "")
        if args[:3] == ("tc", "qdisc", "replace"):
            self.root, self.classes, self.filters = "htb 1:", set(), {}
            return ok
        if args[:3] == ("tc", "qdisc", "del"):
            self.root, self.classes, self.filters = "noqueue 0:", set(), {}
            return ok
        if args[:3] == ("tc", "class", "add"):
            classid = args[args.index("classid") + 1]
            if self.root != "htb 1:" or classid in self.classes:
                return bad
            self.classes.add(classid)
            return ok
        if args[:3] == ("tc", "class", "del"):
            classid = args[args.index("classid") + 1]
            if classid not in self.classes or any(flow[-1] == classid for flow in self.filters.values()):
                return bad
            self.classes.remove(classid)
            return ok
        if args[:3] == ("tc", "filter", "add"):
            prio = int(args[args.index("prio") + 1])
            if prio in self.filters or args[-1] not in self.classes:
                return bad
            self.filters[prio] = args[args.index("u32") :]
            return ok
        if args[:3] == ("tc", "filter", "del"):
            prio = int(args[args.index("prio") + 1])
            return ok if self.filters.pop(prio, None) is not None else bad
        raise AssertionError(f"unexpected command {args}")

    def _iptables(self, family: str, args: list[str], ok: CommandResult, bad: CommandResult) -> CommandResult:
        op, chain, rule = args[0], args[1], tuple(args[2:])
        key = (family, chain)
        if op == "-L":
            return ok
        if op == "-N":
            if key in self.chains:
                return bad
            self.chains[key] = []
            return ok
        if key not in self.chains:
            return bad
        rules = self.chains[key]
        if op == "-S":
            return ok
        if op == "-A":
            if rule[-1] not in ("DROP", "ACCEPT") and (family, rule[-1]) not in self.chains:
                return bad
            rules.append(rule)
            return ok
        if op == "-I":
            rules.insert(int(rule[0]) - 1, rule[1:])
            return ok
        if op == "-D":
            if rule not in rules:
                return bad
            rules.remove(rule)
            return ok
        if op == "-F":
            rules.clear()
            return ok
        if op == "-X":
            referenced = any(("-j", chain) == r[-2:] for rs in self.chains.values() for r in rs)
            if rules or referenced:
                return bad
            del self.chains[key]
            return ok
        raise AssertionError(f"unexpected iptables {args}")


ENDPOINTS = {A: Endpoint("10.0.0.1"), B: Endpoint("10.0.0.2"), C: Endpoint("10.0.0.3")}


def _shaper(kernel: FakeKernel, endpoints: dict[bytes, Endpoint] | None = None) -> KernelShaper:
    shaper = KernelShaper("eth0", endpoints or ENDPOINTS, kernel, tag=TAG)
    shaper.start()
    return shaper


def _expected(desired: dict[bytes, PeerShaping], endpoints: dict[bytes, Endpoint]) -> tuple[object, ...]:
    """The tables a fresh start plus each desired peer's additions give: what apply must leave, whatever was before."""
    kernel = FakeKernel()
    shaper = _shaper(kernel, endpoints)
    for peer, shaping in desired.items():
        add, _ = peer_rules("eth0", shaper.minors[peer], endpoints[peer], shaping, CHAINS)
        for command in add:
            assert kernel(command.argv).returncode == 0, command
    return kernel.snapshot()


# --- units ----------------------------------------------------------------------------------------------


def test_rate_is_the_links_bandwidth_in_bits_per_second() -> None:
    assert rate_bits_per_second(1.0, 1.0) == 8_000_000
    assert rate_bits_per_second(1.0, 0.5) == 16_000_000
    assert rate_bits_per_second(0.0, 0.5) == 0
    assert rate_bits_per_second(1e-12, 1.0) == 1
    with pytest.raises(ValueError, match="round_seconds"):
        rate_bits_per_second(1.0, 0.0)


def test_peer_shaping_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="rate_bps"):
        PeerShaping(rate_bps=-1)
    with pytest.raises(ValueError, match="loss"):
        PeerShaping(loss=1.5)
    assert PeerShaping().empty and not PeerShaping(cut=True).empty


def test_endpoint_refuses_a_name_and_a_bad_port() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        Endpoint("miner-0")
    with pytest.raises(ValueError, match="port"):
        Endpoint("10.0.0.1", 70000)
    assert Endpoint("fd00:0::2").ip == "fd00::2" and Endpoint("fd00::2").version == 6


def test_chain_tag_must_be_short_and_plain() -> None:
    with pytest.raises(ValueError, match="chain tag"):
        chain_names("bad tag")
    with pytest.raises(ValueError, match="chain tag"):
        chain_names("x" * 17)


def test_rules_of_a_rate_limited_lossy_peer() -> None:
    add, remove = peer_rules("eth0", 2, Endpoint("10.0.0.2"), PeerShaping(8_000_000, 0.3), CHAINS)
    argvs = [" ".join(c.argv) for c in add]
    assert argvs == [
        "tc class add dev eth0 parent 1: classid 1:2 htb rate 8000000bit ceil 8000000bit",
        "tc filter add dev eth0 parent 1: protocol ip prio 2 u32 match ip dst 10.0.0.2/32 flowid 1:2",
        f"iptables -w -A {CHAINS[0]} -d 10.0.0.2 -m statistic --mode random --probability 0.3 -j DROP",
    ]
    assert all(c.removal for c in remove) and not any(c.removal for c in add)
    assert [c.argv[:3] for c in remove] == [("iptables", "-w", "-D"), ("tc", "filter", "del"), ("tc", "class", "del")]


def test_rules_of_a_cut_peer_drop_both_ways_and_nothing_else() -> None:
    add, _ = peer_rules("eth0", 3, Endpoint("10.0.0.2"), PeerShaping(8_000_000, 0.3, cut=True), CHAINS)
    assert [" ".join(c.argv) for c in add] == [
        f"iptables -w -A {CHAINS[0]} -d 10.0.0.2 -j DROP",
        f"iptables -w -A {CHAINS[1]} -s 10.0.0.2 -j DROP",
    ]


def test_rules_match_the_port_when_peers_share_an_ip_and_ipv6_uses_ip6() -> None:
    add, _ = peer_rules("lo", 4, Endpoint("127.0.0.1", 7101), PeerShaping(1000, 1.0), CHAINS)
    argvs = [" ".join(c.argv) for c in add]
    assert "match ip dst 127.0.0.1/32 match ip dport 7101 0xffff flowid 1:4" in argvs[1]
    assert argvs[2] == f"iptables -w -A {CHAINS[0]} -d 127.0.0.1 -p tcp --dport 7101 -j DROP"  # loss 1: plain DROP
    add, _ = peer_rules("eth0", 5, Endpoint("fd00::2", 7100), PeerShaping(1000, 0.5, False), CHAINS)
    argvs = [" ".join(c.argv) for c in add]
    assert "protocol ipv6 prio 5 u32 match ip6 dst fd00::2/128 match ip6 dport 7100 0xffff" in argvs[1]
    assert argvs[2].startswith(f"ip6tables -w -A {CHAINS[0]} -d fd00::2 -p tcp --dport 7100 -m statistic")


def test_endpoints_by_ip_when_distinct_else_by_port() -> None:
    apart = from_edges({A: "a:7100", B: "b:7100", C: "c:7100"}, [(A, B), (A, C)])
    ips = {"b": "10.0.0.2", "c": "10.0.0.3"}
    assert peer_endpoints(apart, A, lambda host, port: ips[host]) == {B: Endpoint("10.0.0.2"), C: Endpoint("10.0.0.3")}
    local = from_edges({A: "127.0.0.1:1", B: "127.0.0.1:2", C: "localhost:3"}, [(A, B), (A, C)])
    assert peer_endpoints(local, A, lambda host, port: "127.0.0.1") == {
        B: Endpoint("127.0.0.1", 2),
        C: Endpoint("127.0.0.1", 3),
    }


def test_endpoints_name_an_unresolvable_peer_and_refuse_two_peers_on_one_port() -> None:
    topology = from_edges({A: "a:7100", B: "nowhere:7100", C: "c:7100"}, [(A, B), (A, C)])

    def resolve(host: str, port: int) -> str:
        if host == "nowhere":
            raise OSError("Name or service not known")
        return "10.0.0.3"

    with pytest.raises(KernelShapingError, match=r"cannot resolve peer 02020202's address 'nowhere:7100'"):
        peer_endpoints(topology, A, resolve)
    same = from_edges({A: "a:7100", B: "b:7100", C: "c:7100"}, [(A, B), (A, C)])
    with pytest.raises(KernelShapingError, match="same IP and port"):
        peer_endpoints(same, A, lambda host, port: "10.0.0.9")


def test_device_is_the_one_the_routes_leave_by() -> None:
    def routes(answers: dict[str, CommandResult]) -> Runner:
        return lambda argv: answers[argv[-1]]

    one = routes({ip: CommandResult(0, f"{ip} dev eth0 src 10.0.0.1 uid 0 \\    cache", "") for ip in ("10.0.0.2",)})
    assert detect_device({B: Endpoint("10.0.0.2")}, one) == "eth0"
    two = routes(
        {
            "10.0.0.2": CommandResult(0, "10.0.0.2 dev eth0 src 10.0.0.1", ""),
            "10.1.0.2": CommandResult(0, "10.1.0.2 dev eth1 src 10.1.0.1", ""),
        }
    )
    with pytest.raises(KernelShapingError, match=r"several interfaces \['eth0', 'eth1'\]"):
        detect_device({B: Endpoint("10.0.0.2"), C: Endpoint("10.1.0.2")}, two)
    none = routes({"10.0.0.2": CommandResult(2, "", "RTNETLINK answers: Network is unreachable")})
    with pytest.raises(KernelShapingError, match=r"no route to peer 10\.0\.0\.2: exit 2: RTNETLINK answers"):
        detect_device({B: Endpoint("10.0.0.2")}, none)


def test_start_without_net_admin_is_a_named_error_and_leaves_nothing() -> None:
    kernel = FakeKernel(fail="iptables -w -L")
    before = kernel.snapshot()
    shaper = KernelShaper("eth0", ENDPOINTS, kernel, tag=TAG)
    with pytest.raises(KernelShapingError, match=r"needs root with NET_ADMIN.*iptables -w -L OUTPUT -n.*not permitted"):
        shaper.start()
    assert kernel.snapshot() == before and not shaper.started


def test_start_refuses_a_root_qdisc_that_is_not_ours() -> None:
    kernel = FakeKernel(root="tbf 8001:")
    with pytest.raises(KernelShapingError, match="root qdisc `tbf 8001:` that is not this sidecar's"):
        KernelShaper("eth0", ENDPOINTS, kernel, tag=TAG).start()
    assert kernel.root == "tbf 8001:"  # untouched: it is another process's


def test_a_failed_start_halfway_removes_what_it_installed() -> None:
    kernel = FakeKernel(fail=f"iptables -w -I INPUT 1 -j {CHAINS[1]}")
    before = kernel.snapshot()
    with pytest.raises(KernelShapingError, match="could not start on eth0"):
        KernelShaper("eth0", ENDPOINTS, kernel, tag=TAG).start()
    assert kernel.snapshot() == before


def test_start_removes_a_crashed_predecessors_rules() -> None:
    kernel = FakeKernel()
    crashed = _shaper(kernel)
    crashed.apply({B: PeerShaping(8_000, 0.5), C: PeerShaping(cut=True)})  # then SIGKILL: nothing removed
    shaper = _shaper(kernel)
    assert kernel.snapshot() == _expected({}, ENDPOINTS)
    shaper.stop()
    assert kernel.snapshot() == FakeKernel().snapshot()


def test_apply_touches_only_the_peers_that_changed_and_is_idempotent() -> None:
    kernel = FakeKernel()
    shaper = _shaper(kernel)
    assert shaper.apply({B: PeerShaping(8_000_000), C: PeerShaping(loss=0.2)}) == 2
    calls = len(kernel.calls)
    assert shaper.apply({B: PeerShaping(8_000_000), C: PeerShaping(loss=0.2)}) == 0
    assert len(kernel.calls) == calls
    assert shaper.apply({B: PeerShaping(8_000_000), C: PeerShaping(cut=True)}) == 1
    assert all(B.hex()[:2] not in " ".join(c) and "10.0.0.2" not in " ".join(c) for c in kernel.calls[calls:])
    assert [row["cut"] for row in shaper.table()] == [False, True]


def test_apply_needs_a_start_and_known_peers() -> None:
    kernel = FakeKernel()
    shaper = KernelShaper("eth0", ENDPOINTS, kernel, tag=TAG)
    with pytest.raises(KernelShapingError, match="not started"):
        shaper.apply({})
    shaper.start()
    with pytest.raises(KernelShapingError, match=r"no endpoint for peer\(s\) \['09090909'\]"):
        shaper.apply({_id(8): PeerShaping(cut=True)})


def test_a_failed_addition_is_named_and_removed_by_the_next_apply() -> None:
    kernel = FakeKernel()
    shaper = _shaper(kernel)
    kernel.fail = "tc filter add"
    with pytest.raises(KernelShapingError, match=r"`tc filter add dev eth0 .* failed: exit 1: Operation not permitted"):
        shaper.apply({B: PeerShaping(8_000_000)})
    kernel.fail = None
    shaper.apply({})
    assert kernel.snapshot() == _expected({}, ENDPOINTS)


SHAPINGS = st.builds(
    PeerShaping,
    rate_bps=st.sampled_from([0, 1_000, 8_000_000]),
    loss=st.sampled_from([0.0, 0.3, 1.0]),
    cut=st.booleans(),
)
STATES = st.dictionaries(st.sampled_from([A, B, C]), SHAPINGS)
ENDPOINT_SETS = st.sampled_from(
    [
        ENDPOINTS,
        {A: Endpoint("127.0.0.1", 7100), B: Endpoint("127.0.0.1", 7101), C: Endpoint("127.0.0.1", 7102)},
        {A: Endpoint("fd00::1"), B: Endpoint("10.0.0.2"), C: Endpoint("fd00::3", 7100)},
    ]
)


@settings(max_examples=60, deadline=None)
@given(endpoints=ENDPOINT_SETS, states=st.lists(STATES, min_size=1, max_size=6))
def test_apply_reaches_every_desired_state_and_stop_leaves_nothing(
    endpoints: dict[bytes, Endpoint], states: list[dict[bytes, PeerShaping]]
) -> None:
    kernel = FakeKernel()
    before = kernel.snapshot()
    shaper = _shaper(kernel, endpoints)
    for desired in states:
        shaper.apply(desired)
        wanted = {peer: shaping for peer, shaping in desired.items() if not shaping.empty}
        assert kernel.snapshot() == _expected(wanted, endpoints)
        assert shaper.installed == wanted
    shaper.stop()
    shaper.stop()
    assert kernel.snapshot() == before


# --- the sidecar hook -----------------------------------------------------------------------------------


def _sidecar(kernel: FakeKernel, spec: LinkSpec | None = None) -> tuple[Sidecar, KernelShaper]:
    topology = from_edges(
        {A: "10.0.0.1:7100", B: "10.0.0.2:7100", C: "10.0.0.3:7100"}, [(A, B), (A, C)], spec=spec or LinkSpec()
    )
    shaper = KernelShaper("eth0", {B: Endpoint("10.0.0.2"), C: Endpoint("10.0.0.3")}, kernel, tag=TAG)
    shaper.start()
    return Sidecar(A, topology, "127.0.0.1:1", round_seconds=0.5, kernel=shaper), shaper


def test_desired_state_follows_the_link_table() -> None:
    topology = from_edges({A: "x:1", B: "y:1", C: "z:1"}, [(A, B), (A, C)], spec=LinkSpec(2, 1.0, 0.1))
    table = LinkTable(A, topology)
    table.set_link(C, LinkSpec(1, 0.0, 0.0), enabled=False)
    assert desired_state(table, 0.5) == {B: PeerShaping(16_000_000, 0.1), C: PeerShaping(0, 0.0, cut=True)}


CONTEXT = cast(grpc.aio.ServicerContext, None)  # the control handlers do not read their context


def test_sidecar_enforces_its_links_set_link_partition_and_heal_and_removes_all_on_close() -> None:
    kernel = FakeKernel()
    before = kernel.snapshot()
    sidecar, shaper = _sidecar(kernel, LinkSpec(1, 0.5, 0.0))
    control = ControlServicer(sidecar)
    assert shaper.installed == {B: PeerShaping(8_000_000), C: PeerShaping(8_000_000)}

    async def scenario() -> None:
        lossy = netem_pb2.Link(peer=C, latency_rounds=3, bandwidth_mb_per_round=0.0, loss=0.25, up=True)
        await control.SetLink(lossy, CONTEXT)
        assert shaper.installed[C] == PeerShaping(0, 0.25)
        groups = [netem_pb2.NodeGroup(nodes=[A]), netem_pb2.NodeGroup(nodes=[B])]
        await control.Partition(netem_pb2.PartitionRequest(groups=groups), CONTEXT)
        assert shaper.installed[B].cut and not shaper.installed[C].cut
        await control.Heal(netem_pb2.HealRequest(), CONTEXT)
        assert shaper.installed == {B: PeerShaping(8_000_000), C: PeerShaping(0, 0.25)}
        await control.SetLink(netem_pb2.Link(peer=C, latency_rounds=1, up=True), CONTEXT)
        assert kernel.snapshot() == _expected({B: PeerShaping(8_000_000)}, shaper.endpoints)
        await sidecar.close()

    asyncio.run(scenario())
    assert kernel.snapshot() == before and not shaper.started


def test_a_kernel_failure_at_run_time_is_internal_named_and_counted() -> None:
    kernel = FakeKernel()
    sidecar, _ = _sidecar(kernel)
    control = ControlServicer(sidecar)
    counter = metrics.NETEM_KERNEL_FAILURES.labels("set_link")
    failures = counter._value.get()

    async def scenario() -> None:
        kernel.fail = "iptables -w -A"
        with pytest.raises(Refusal) as caught:
            await control.SetLink(netem_pb2.Link(peer=B, latency_rounds=1, loss=0.5, up=True), CONTEXT)
        assert caught.value.kind == RefusalKind.INTERNAL and caught.value.reason == "kernel_shaping_failed"
        assert counter._value.get() == failures + 1
        kernel.fail = None
        await control.Heal(netem_pb2.HealRequest(), CONTEXT)  # the next change brings the kernel to the links again

    asyncio.run(scenario())
    endpoints = {B: Endpoint("10.0.0.2"), C: Endpoint("10.0.0.3")}
    assert kernel.snapshot() == _expected({B: PeerShaping(0, 0.5)}, endpoints)


def test_a_sidecar_without_kernel_shaping_still_partitions_in_user_space() -> None:
    topology = from_edges({A: "10.0.0.1:7100", B: "10.0.0.2:7100"}, [(A, B)])
    sidecar = Sidecar(A, topology, "127.0.0.1:1", round_seconds=0.5)
    groups = [netem_pb2.NodeGroup(nodes=[A]), netem_pb2.NodeGroup(nodes=[B])]
    asyncio.run(ControlServicer(sidecar).Partition(netem_pb2.PartitionRequest(groups=groups), CONTEXT))
    assert sidecar.kernel is None and not sidecar.table.links[B].up


def test_kernel_flag_and_environment() -> None:
    assert netem_main.parser().parse_args([]).kernel_shaping is False
    assert netem_main.parser().parse_args(["--kernel-shaping"]).kernel_shaping is True
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(netem_main.KERNEL_ENV, "1")
        patch.setenv("CHAINLAB_NETEM_KERNEL_DEVICE", "eth0")
        args = netem_main.parser().parse_args([])
        assert args.kernel_shaping is True and args.kernel_device == "eth0"


def test_service_without_kernel_shaping_builds_no_shaper() -> None:
    topology = from_edges({A: "127.0.0.1:1", B: "127.0.0.1:2"}, [(A, B)])
    args = netem_main.parser().parse_args([])
    assert netem_main.kernel_shaper(args, A, topology) is None


# --- measured in namespaces ------------------------------------------------------------------------------

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "tc", "iptables")),
    reason="needs root (network namespaces, tc, iptables) and iproute2 + iptables on PATH: `make test` installs them",
)


@dataclass(frozen=True)
class Pair:
    """Two namespaces joined by a veth pair: a (the shaped sender) and b."""

    a: str
    b: str
    dev_a: str
    ip_a: str
    ip_b: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@pytest.fixture
def pair() -> Iterator[Pair]:
    tag = f"{os.getpid() % 100000}"
    a, b = f"clk{tag}a", f"clk{tag}b"
    net = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    made: list[str] = []
    try:
        for ns in (a, b):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", a, "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}", "netns", b)
        _ip("-n", a, "addr", "add", f"{net}.1/24", "dev", f"va{tag}")
        _ip("-n", b, "addr", "add", f"{net}.2/24", "dev", f"vb{tag}")
        _ip("-n", a, "link", "set", f"va{tag}", "up")
        _ip("-n", b, "link", "set", f"vb{tag}", "up")
        yield Pair(a, b, f"va{tag}", f"{net}.1", f"{net}.2")
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth pair, and with it the other end
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)


def _record(section: str, figures: dict[str, object]) -> None:
    """Add one measurement to runs/kernel-shaping.json (the figures the closing note quotes)."""
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[section] = figures
    data["kernel"] = os.uname().release
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


RECEIVE_TCP = """
import json, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9100)); s.listen(1)
print("ready", flush=True)
conn, _ = s.accept(); samples = []; total = 0
while True:
    data = conn.recv(1 << 16)
    if not data:
        break
    total += len(data); samples.append((time.monotonic(), total))
print(json.dumps(samples[:: max(1, len(samples) // 2000)] + samples[-1:]), flush=True)
"""
SEND_TCP = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9100), timeout=5); chunk = b"x" * 65536
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendall(chunk)
s.close()
"""
RECEIVE_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", 9101)); print("ready", flush=True); s.settimeout(float(sys.argv[1])); seen = set()
try:
    while True:
        seen.add(int(s.recv(64)))
        s.settimeout(1.0)
except socket.timeout:
    pass
print(len(seen), flush=True)
"""
SEND_UDP = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    try:
        s.sendto(str(i).encode(), (sys.argv[1], 9101))
    except PermissionError:  # a DROP in OUTPUT answers the sender EPERM: the packet is dropped, which is the point
        pass
    if i % 50 == 49:
        time.sleep(0.002)
"""


def _in(ns: str, code: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code), *args]


@contextlib.contextmanager
def _receiver(ns: str, code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(_in(ns, code, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _tcp_rate(pair: Pair, seconds: float) -> float:
    """Bytes per second received in b from a TCP sender in a, after the first quarter (the bucket's burst)."""
    with _receiver(pair.b, RECEIVE_TCP) as receiver:
        subprocess.run(_in(pair.a, SEND_TCP, pair.ip_b, str(seconds)), check=True, timeout=seconds + 30)
        out, _ = receiver.communicate(timeout=30)
    samples = json.loads(out.strip().splitlines()[-1])
    start = samples[0][0] + seconds / 4
    after = [(t, n) for t, n in samples if t >= start]
    (t0, n0), (t1, n1) = after[0], after[-1]
    return float((n1 - n0) / (t1 - t0))


def _udp_received(pair: Pair, packets: int, first_within: float = 3.0) -> int:
    with _receiver(pair.b, RECEIVE_UDP, str(first_within)) as receiver:
        subprocess.run(_in(pair.a, SEND_UDP, pair.ip_b, str(packets)), check=True, timeout=60)
        out, _ = receiver.communicate(timeout=30)
    return int(out.strip().splitlines()[-1])


def _ns_shaper(pair: Pair) -> KernelShaper:
    runner = subprocess_runner(pair.a)
    endpoints = {B: Endpoint(pair.ip_b)}
    assert detect_device(endpoints, runner) == pair.dev_a
    shaper = KernelShaper(pair.dev_a, endpoints, runner, tag=TAG)
    shaper.start()
    return shaper


def _leftovers(pair: Pair) -> str:
    """What of ours is still in namespace a: our chains in iptables, any class or filter on the interface."""
    run = subprocess_runner(pair.a)
    chains = [line for line in run(["iptables", "-w", "-S"]).stdout.splitlines() if "CLNETEM" in line]
    tc = (
        run(["tc", "class", "show", "dev", pair.dev_a]).stdout + run(["tc", "filter", "show", "dev", pair.dev_a]).stdout
    )
    return "\n".join(chains + [line for line in tc.splitlines() if line.strip()])


@pytest.mark.slow
@NEEDS_ROOT
def test_htb_limits_tcp_throughput_to_the_links_rate(pair: Pair) -> None:
    unshaped = _tcp_rate(pair, 0.6)
    shaper = _ns_shaper(pair)
    try:
        rate = rate_bits_per_second(1.0, 1.0)  # 1 MB per round at 1 s per round: 8 Mbit/s
        shaper.apply({B: PeerShaping(rate_bps=rate)})
        shaped = _tcp_rate(pair, 3.0)
        shaper.apply({})
        after = _tcp_rate(pair, 0.6)
    finally:
        shaper.stop()
    assert _leftovers(pair) == ""
    measured = shaped * 8
    _record(
        "throughput",
        {
            "limit_bits_per_second": rate,
            "measured_bits_per_second": round(measured),
            "ratio": round(measured / rate, 4),
            "unshaped_bits_per_second": round(unshaped * 8),
            "after_removal_bits_per_second": round(after * 8),
            "method": "htb class + u32 filter on the peer's IP, TCP sender in one namespace, receiver in the other, "
            "3 s, rate over the last 3/4",
        },
    )
    assert 0.75 * rate <= measured <= 1.25 * rate, measured
    assert unshaped * 8 > 4 * rate and after * 8 > 4 * rate  # the limit was the htb class, and it is gone


@pytest.mark.slow
@NEEDS_ROOT
def test_iptables_loss_partition_and_heal(pair: Pair) -> None:
    packets, loss = 2000, 0.3
    clean = _udp_received(pair, packets)
    shaper = _ns_shaper(pair)
    try:
        shaper.apply({B: PeerShaping(loss=loss)})
        lossy = _udp_received(pair, packets)
        shaper.apply({B: PeerShaping(loss=loss, cut=True)})  # a partition
        cut = _udp_received(pair, 200, first_within=1.0)
        cut_tcp = subprocess.run(
            _in(pair.a, "import socket, sys; socket.create_connection((sys.argv[1], 9100), timeout=1)", pair.ip_b),
            capture_output=True,
            text=True,
            timeout=30,
        )
        shaper.apply({})  # heal
        healed = _udp_received(pair, 200)
    finally:
        shaper.stop()
    assert _leftovers(pair) == ""
    measured = 1 - lossy / packets
    sigma = math.sqrt(loss * (1 - loss) / packets)
    _record(
        "loss",
        {
            "probability": loss,
            "packets": packets,
            "received": lossy,
            "measured_loss": round(measured, 4),
            "tolerance_4_sigma": round(4 * sigma, 4),
            "received_without_rule": clean,
            "partition_received_of_200": cut,
            "healed_received_of_200": healed,
        },
    )
    assert clean == packets  # the path itself loses nothing: what is lost below is the rule's
    assert abs(measured - loss) <= 4 * sigma, measured
    assert cut == 0 and cut_tcp.returncode != 0
    assert healed == 200


def _topology_file(pair: Pair, path: Path, spec: LinkSpec) -> Path:
    topology = from_edges({A: f"{pair.ip_a}:7100", B: f"{pair.ip_b}:7100"}, [(A, B)], spec=spec)
    dump_topology(topology, path)
    return path


@pytest.mark.slow
@NEEDS_ROOT
def test_service_with_kernel_shaping_installs_replaces_a_killed_ones_rules_and_removes_on_sigterm(
    pair: Pair, tmp_path: Path
) -> None:
    topology = _topology_file(pair, tmp_path / "topology.yaml", LinkSpec(1, 2.0, 0.1))
    command = [sys.executable, "-m", "services.netem.main", "--node-id", A.hex(), "--node", "127.0.0.1:1"]
    command += ["--topology", str(topology), "--listen", f"{pair.ip_a}:7100", "--round-seconds", "1"]
    env = {**os.environ, netem_main.KERNEL_ENV: "1", "PYTHONPATH": str(REPO)}
    run = subprocess_runner(pair.a)
    lossy = f"-d {pair.ip_b}/32 -m statistic --mode random --probability 0.1"

    def started(log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as err:
            process = subprocess.Popen(["ip", "netns", "exec", pair.a, *command], env=env, cwd=REPO, stderr=err)
        deadline = time.monotonic() + 30
        while '"kernel_shaping"' not in log.read_text():  # logged once the rules are in and the server is up
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "rate 16Mbit" in run(["tc", "class", "show", "dev", pair.dev_a]).stdout
        assert run(["iptables", "-w", "-S"]).stdout.count(lossy) == 1
        return process

    first = started(tmp_path / "first.log")
    first.kill()  # SIGKILL: nothing removed
    first.wait()
    assert _leftovers(pair) != ""
    second = started(tmp_path / "second.log")
    try:
        assert "removing kernel rules left by an earlier sidecar" in (tmp_path / "second.log").read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert _leftovers(pair) == ""


@pytest.mark.slow
@NEEDS_ROOT
def test_service_without_net_admin_stops_at_start_with_a_named_error(pair: Pair, tmp_path: Path) -> None:
    topology = _topology_file(pair, tmp_path / "topology.yaml", LinkSpec())
    drop = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop NET_ADMIN")
    command = [sys.executable, "-m", "services.netem.main", "--node-id", A.hex(), "--node", "127.0.0.1:1"]
    command += ["--topology", str(topology), "--listen", f"{pair.ip_a}:7100", "--kernel-shaping"]
    done = subprocess.run(
        ["ip", "netns", "exec", pair.a, *drop, *command],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "chainlab-netem: error: kernel shaping could not start on" in done.stderr
    assert "needs root with NET_ADMIN" in done.stderr and "Traceback" not in done.stderr
    assert _leftovers(pair) == ""
