"""Kernel-level shaping for the netem sidecar: per-peer htb rate limits and iptables loss and DROP rules.

Opt-in (``chainlab-netem --kernel-shaping``). The sidecar shapes the interface of the network namespace it runs
in, which is what a pod's container with NET_ADMIN can do:

- bandwidth: an htb root qdisc (handle 1:) with one class per rate-limited peer, picked by a u32 filter on the
  peer's IP (and its sidecar's port when several peers share one IP, as on loopback); unclassified traffic
  leaves htb directly, unshaped;
- loss: ``iptables -m statistic --mode random --probability p -j DROP`` on what is sent to the peer;
- a link that is down (partitioned, or disabled with SetLink): DROP to the peer and from it.

This kernel has no netem qdisc, so delay is not the kernel's: the sidecar's user-space scheduler keeps holding
each gossip hop for its rounds (links.LinkTable.hops), as without kernel shaping. The kernel rules come on top
of the user-space hop rule; they act on the real bytes and packets, not on the declared message sizes.

What is installed is kept in a table (KernelShaper.installed) and every change is an idempotent move from that
table to the desired state: only the peers whose shaping changed are touched. stop() removes everything; a
sidecar restarted after SIGKILL removes its predecessor's leftovers before installing its own. Commands run as
argument lists, never through a shell.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chainlab.live.netem.links import BYTES_PER_MB, LinkTable
from chainlab.live.netem.topology import Topology

__all__ = [
    "DEFAULT_QDISCS",
    "Command",
    "CommandResult",
    "Endpoint",
    "KernelShaper",
    "KernelShapingError",
    "PeerShaping",
    "Runner",
    "desired_state",
    "detect_device",
    "peer_endpoints",
    "peer_rules",
    "rate_bits_per_second",
    "subprocess_runner",
]

log = logging.getLogger("chainlab.netem.kernel")

ROOT_HANDLE = "1:"
FIRST_MINOR = 2  # htb class 1:1 is left free; peer i (sorted by node ID) gets class and filter priority 2 + i
COMMAND_TIMEOUT = 10.0
# Root qdiscs the kernel installs by itself: replacing one loses nothing, and deleting ours restores it.
DEFAULT_QDISCS = frozenset({"noqueue", "pfifo_fast", "fq_codel", "fq", "mq", "pfifo", "bfifo", "sfq", "cake"})


class KernelShapingError(RuntimeError):
    """A kernel rule could not be installed or removed; the message names the command and the kernel's answer."""


@dataclass(frozen=True)
class CommandResult:
    """What one command answered."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str]], CommandResult]


def subprocess_runner(netns: str | None = None, timeout: float = COMMAND_TIMEOUT) -> Runner:
    """A runner of argument lists (no shell), in the named network namespace if netns is given (needs root)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []

    def run(argv: Sequence[str]) -> CommandResult:
        try:
            done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise KernelShapingError(
                f"kernel shaping needs `{prefix[0] if prefix else argv[0]}` on PATH (iproute2 and iptables)"
            ) from None
        except subprocess.TimeoutExpired:
            raise KernelShapingError(f"`{' '.join(argv)}` did not finish within {timeout} s") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    return run


@dataclass(frozen=True, order=True)
class Endpoint:
    """Where a peer's traffic goes: its IP, and its sidecar's TCP port when the IP alone does not tell peers apart."""

    ip: str
    port: int | None = None

    def __post_init__(self) -> None:
        try:
            address = ipaddress.ip_address(self.ip)
        except ValueError:
            raise ValueError(f"{self.ip!r} is not an IP address") from None
        object.__setattr__(self, "ip", str(address))
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")

    @property
    def version(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.ip).version


@dataclass(frozen=True)
class PeerShaping:
    """What the kernel enforces on traffic to one peer: a rate in bit/s (0: unlimited), a loss probability, a cut."""

    rate_bps: int = 0
    loss: float = 0.0
    cut: bool = False

    def __post_init__(self) -> None:
        if self.rate_bps < 0:
            raise ValueError(f"rate_bps must be >= 0, got {self.rate_bps}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be a probability in [0, 1], got {self.loss}")

    @property
    def empty(self) -> bool:
        """Whether nothing needs installing for this peer."""
        return not self.cut and self.rate_bps == 0 and self.loss == 0.0


def rate_bits_per_second(bandwidth_mb_per_round: float, round_seconds: float) -> int:
    """A link's bandwidth in MB per round as bit/s (0 stays 0: unlimited); at least 1 bit/s when limited."""
    if bandwidth_mb_per_round <= 0.0:
        return 0
    if not (math.isfinite(round_seconds) and round_seconds > 0):
        raise ValueError(f"round_seconds must be > 0, got {round_seconds}")
    return max(1, round(bandwidth_mb_per_round * BYTES_PER_MB * 8 / round_seconds))


def desired_state(table: LinkTable, round_seconds: float) -> dict[bytes, PeerShaping]:
    """The kernel rules a sidecar's links call for now: each link's bandwidth, loss and whether it is up."""
    return {
        peer: PeerShaping(
            rate_bps=rate_bits_per_second(state.spec.bandwidth_mb_per_round, round_seconds),
            loss=state.spec.loss,
            cut=not state.up,
        )
        for peer, state in sorted(table.links.items())
    }


@dataclass(frozen=True)
class Command:
    """One command; a removal may fail harmlessly (the rule is already gone), an addition may not."""

    argv: tuple[str, ...]
    removal: bool = False


def _iptables(endpoint: Endpoint) -> str:
    return "iptables" if endpoint.version == 4 else "ip6tables"


def _match(endpoint: Endpoint, outgoing: bool) -> list[str]:
    """The iptables match of traffic to the peer (outgoing) or from it."""
    if outgoing:
        match = ["-d", endpoint.ip]
        if endpoint.port is not None:
            match += ["-p", "tcp", "--dport", str(endpoint.port)]
    else:
        match = ["-s", endpoint.ip]
        if endpoint.port is not None:
            match += ["-p", "tcp", "--sport", str(endpoint.port)]
    return match


def _probability(loss: float) -> str:
    return format(loss, ".9g")


def chain_names(tag: str) -> tuple[str, str]:
    """This sidecar's own iptables chains (outgoing, incoming); tag tells sidecars sharing a namespace apart."""
    if not tag or len(tag) > 16 or not tag.isalnum():
        raise ValueError(f"chain tag must be 1..16 letters or digits, got {tag!r}")
    return f"CLNETEM-{tag}-O", f"CLNETEM-{tag}-I"


def peer_rules(
    device: str, minor: int, endpoint: Endpoint, shaping: PeerShaping, chains: tuple[str, str]
) -> tuple[list[Command], list[Command]]:
    """The commands that install shaping for one peer, and those that remove it again (in the order to run)."""
    out_chain, in_chain = chains
    ipt = [_iptables(endpoint), "-w"]
    add: list[Command] = []
    remove: list[Command] = []
    if shaping.cut:
        for chain, outgoing in ((out_chain, True), (in_chain, False)):
            rule = [chain, *_match(endpoint, outgoing), "-j", "DROP"]
            add.append(Command((*ipt, "-A", *rule)))
            remove.append(Command((*ipt, "-D", *rule), removal=True))
        return add, remove
    if shaping.rate_bps > 0:
        classid = f"1:{minor:x}"
        rate = f"{shaping.rate_bps}bit"
        if endpoint.version == 4:
            protocol, match = "ip", ["match", "ip", "dst", f"{endpoint.ip}/32"]
            if endpoint.port is not None:
                match += ["match", "ip", "dport", str(endpoint.port), "0xffff"]
        else:
            protocol, match = "ipv6", ["match", "ip6", "dst", f"{endpoint.ip}/128"]
            if endpoint.port is not None:
                match += ["match", "ip6", "dport", str(endpoint.port), "0xffff"]
        add.append(Command(("tc", "class", "add", "dev", device, "parent", ROOT_HANDLE, "classid", classid,
                            "htb", "rate", rate, "ceil", rate)))  # fmt: skip
        add.append(Command(("tc", "filter", "add", "dev", device, "parent", ROOT_HANDLE, "protocol", protocol,
                            "prio", str(minor), "u32", *match, "flowid", classid)))  # fmt: skip
        # The filter goes first: htb refuses to delete a class a filter still points to.
        remove.append(
            Command(("tc", "filter", "del", "dev", device, "parent", ROOT_HANDLE, "prio", str(minor)), removal=True)
        )
        remove.append(Command(("tc", "class", "del", "dev", device, "classid", classid), removal=True))
    if shaping.loss > 0.0:
        rule = [out_chain, *_match(endpoint, True)]
        if shaping.loss < 1.0:
            rule += ["-m", "statistic", "--mode", "random", "--probability", _probability(shaping.loss)]
        rule += ["-j", "DROP"]
        add.append(Command((*ipt, "-A", *rule)))
        remove.insert(0, Command((*ipt, "-D", *rule), removal=True))
    return add, remove


def _split_address(address: str) -> tuple[str, int]:
    """host and port of "host:port" or "[v6]:port"."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]"), int(port)


Resolver = Callable[[str, int], str]


def resolve_host(host: str, port: int) -> str:
    """The first address the system resolver gives for host (what the sidecar's gRPC channel would dial)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return str(infos[0][4][0])


def peer_endpoints(topology: Topology, me: bytes, resolve: Resolver = resolve_host) -> dict[bytes, Endpoint]:
    """Each neighbour's endpoint: its sidecar's IP, with the port too when two neighbours share an IP."""
    resolved: dict[bytes, tuple[str, int]] = {}
    for peer in sorted(topology.neighbours(me)):
        address = topology.address(peer)
        host, port = _split_address(address)
        try:
            resolved[peer] = (resolve(host, port), port)
        except (OSError, IndexError) as exc:
            raise KernelShapingError(f"cannot resolve peer {peer.hex()[:8]}'s address {address!r}: {exc}") from None
    ips = [ip for ip, _ in resolved.values()]
    by_ip = len(set(ips)) == len(ips)
    endpoints = {peer: Endpoint(ip, None if by_ip else port) for peer, (ip, port) in resolved.items()}
    if len(set(endpoints.values())) != len(endpoints):
        raise KernelShapingError("two neighbours resolve to the same IP and port; kernel rules cannot tell them apart")
    return endpoints


def detect_device(endpoints: Mapping[bytes, Endpoint], runner: Runner) -> str:
    """The one interface the routes to every peer leave by (`ip route get`); an error if they leave by several."""
    devices: dict[str, str] = {}
    for endpoint in sorted(set(endpoints.values())):
        result = runner(["ip", "-o", "route", "get", endpoint.ip])
        words = result.stdout.split()
        if result.returncode != 0 or "dev" not in words[:-1]:
            raise KernelShapingError(f"no route to peer {endpoint.ip}: {_answer(result)}")
        devices[endpoint.ip] = words[words.index("dev") + 1]
    found = sorted(set(devices.values()))
    if len(found) != 1:
        raise KernelShapingError(f"peers are reached over several interfaces {found}; pass --kernel-device")
    return found[0]


class KernelShaper:
    """The kernel rules of one sidecar on one interface: a table of what is installed, moved to the desired state."""

    def __init__(
        self,
        device: str,
        endpoints: Mapping[bytes, Endpoint],
        runner: Runner,
        *,
        tag: str,
    ) -> None:
        self.device = device
        self.endpoints = dict(sorted(endpoints.items()))
        self.minors = {peer: FIRST_MINOR + i for i, peer in enumerate(self.endpoints)}
        self.run = runner
        self.chains = chain_names(tag)
        self.installed: dict[bytes, PeerShaping] = {}
        self.started = False
        self._own_root = False  # whether the root qdisc is ours to delete (never another process's)
        self._dirty: set[bytes] = set()  # peers whose last change failed halfway: redone by the next apply

    # --- commands -----------------------------------------------------------------------------------

    def _must(self, argv: Sequence[str]) -> CommandResult:
        result = self.run(argv)
        if result.returncode != 0:
            raise KernelShapingError(f"`{' '.join(argv)}` failed: {_answer(result)}")
        return result

    def _may(self, argv: Sequence[str]) -> CommandResult:
        result = self.run(argv)
        if result.returncode != 0:
            log.debug("removal found nothing to remove", extra={"command": " ".join(argv), "answer": _answer(result)})
        return result

    def _families(self) -> list[str]:
        versions = {endpoint.version for endpoint in self.endpoints.values()} or {4}
        return [("iptables" if version == 4 else "ip6tables") for version in sorted(versions)]

    # --- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the permissions, remove a crashed predecessor's rules, install the root qdisc and own chains."""
        try:
            self._start()
        except KernelShapingError as exc:
            self.stop()
            raise KernelShapingError(
                f"kernel shaping could not start on {self.device} (it needs root with NET_ADMIN in this network "
                f"namespace, iproute2 and iptables): {exc}"
            ) from None
        self.started = True
        log.info("kernel shaping started", extra={"device": self.device, "peers": len(self.endpoints)})

    def _start(self) -> None:
        out_chain, in_chain = self.chains
        first = self._families()[0]
        self._must([first, "-w", "-L", "OUTPUT", "-n"])
        root = self._root_qdisc(strict=True)
        if self.run([first, "-w", "-S", out_chain]).returncode == 0:
            log.warning("removing kernel rules left by an earlier sidecar", extra={"chain": out_chain})
            self._remove_chains()
            if root.startswith("htb 1:"):
                self._may(["tc", "qdisc", "del", "dev", self.device, "root"])
                root = self._root_qdisc(strict=True)
        kind = root.split(" ", 1)[0]
        if kind and kind not in DEFAULT_QDISCS:
            raise KernelShapingError(
                f"interface {self.device} already has a root qdisc `{root}` that is not this sidecar's "
                "(kernel shaping needs one sidecar per network namespace)"
            )
        self._must(["tc", "qdisc", "replace", "dev", self.device, "root", "handle", ROOT_HANDLE, "htb"])
        self._own_root = True
        for ipt in self._families():
            for chain, hook in ((out_chain, "OUTPUT"), (in_chain, "INPUT")):
                self._must([ipt, "-w", "-N", chain])
                self._must([ipt, "-w", "-I", hook, "1", "-j", chain])

    def _root_qdisc(self, *, strict: bool = False) -> str:
        """The interface's root qdisc as `kind handle` ('' if none is shown or, unless strict, if tc fails)."""
        result = self._must(self._qdisc_show()) if strict else self.run(self._qdisc_show())
        words = result.stdout.split() if result.returncode == 0 else []
        return " ".join(words[1:3]) if len(words) >= 3 and words[0] == "qdisc" else ""

    def _qdisc_show(self) -> list[str]:
        return ["tc", "qdisc", "show", "dev", self.device, "root"]

    def _remove_chains(self) -> None:
        out_chain, in_chain = self.chains
        for ipt in self._families():
            for chain, hook in ((out_chain, "OUTPUT"), (in_chain, "INPUT")):
                # A jump may have been inserted twice by an interrupted start: remove until none is left.
                for _ in range(8):
                    if self.run([ipt, "-w", "-D", hook, "-j", chain]).returncode != 0:
                        break
                self._may([ipt, "-w", "-F", chain])
                self._may([ipt, "-w", "-X", chain])

    def apply(self, desired: Mapping[bytes, PeerShaping]) -> int:
        """Move the installed rules to desired (peers absent from it get none); returns how many peers changed."""
        if not self.started:
            raise KernelShapingError("kernel shaping is not started")
        unknown = sorted(peer.hex()[:8] for peer in desired if peer not in self.endpoints)
        if unknown:
            raise KernelShapingError(f"no endpoint for peer(s) {unknown}")
        changed = 0
        for peer, endpoint in self.endpoints.items():
            old = self.installed.get(peer, PeerShaping())
            new = desired.get(peer, PeerShaping())
            if old == new and peer not in self._dirty:
                continue
            changed += 1
            _, remove = peer_rules(self.device, self.minors[peer], endpoint, old, self.chains)
            for command in remove:
                self._may(command.argv)
            self.installed.pop(peer, None)
            self._dirty.discard(peer)
            if new.empty:
                continue
            # Recorded before adding: if an addition fails, the next apply or stop still removes what went in.
            self.installed[peer] = new
            self._dirty.add(peer)
            add, _ = peer_rules(self.device, self.minors[peer], endpoint, new, self.chains)
            for command in add:
                self._must(command.argv)
            self._dirty.discard(peer)
        if changed:
            log.info("kernel rules applied", extra={"peers_changed": changed, "peers_shaped": len(self.installed)})
        return changed

    def stop(self) -> None:
        """Remove every rule, both chains and the root qdisc; safe to call twice or after a failed start."""
        for peer, shaping in list(self.installed.items()):
            _, remove = peer_rules(self.device, self.minors[peer], self.endpoints[peer], shaping, self.chains)
            for command in remove:
                self._may(command.argv)
        self.installed.clear()
        self._dirty.clear()
        try:
            self._remove_chains()
            if self._own_root:
                self._may(["tc", "qdisc", "del", "dev", self.device, "root"])
        except KernelShapingError as exc:  # a tool missing altogether: nothing of ours can be installed either
            log.warning("kernel rules not removed", extra={"error": str(exc)})
        if self.started:
            log.info("kernel shaping stopped", extra={"device": self.device})
        self.started = False
        self._own_root = False

    def table(self) -> list[dict[str, object]]:
        """What is installed now, one row per shaped peer (for logs and tests)."""
        return [
            {
                "peer": peer.hex(),
                "ip": self.endpoints[peer].ip,
                "port": self.endpoints[peer].port,
                "classid": f"1:{self.minors[peer]:x}",
                "rate_bps": shaping.rate_bps,
                "loss": shaping.loss,
                "cut": shaping.cut,
            }
            for peer, shaping in self.installed.items()
        ]


def _answer(result: CommandResult) -> str:
    text = (result.stderr or result.stdout).strip()
    return f"exit {result.returncode}" + (f": {text}" if text else "")
