"""`make chart-check`: lint, render and validate the Helm chart for every values profile and Kubernetes version.

Each profile in helm/chainlab/ci/*-values.yaml is linted (`helm lint --strict`) and rendered (`helm template`) for
every version in KUBE_VERSIONS; every rendered object then goes through `kubernetes-validate --strict` (core
kinds), the prometheus-operator models (tools/k8s-models: PodMonitor, PrometheusRule) or a structural check
(Chaos Mesh). checkov runs once over all renderings: a failed check passes only when helm/chainlab/ci/checkov-skips.yaml
justifies it in one line. values.schema.json must reject each of BAD_VALUES. The summary goes to
runs/chart-check.json and a table on stdout; the exit status is 1 when anything failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "chainlab"
PROFILES_DIR = CHART / "ci"
SKIPS_FILE = PROFILES_DIR / "checkov-skips.yaml"
HELM = Path(os.environ.get("HELM", str(ROOT / "tools" / "helm" / "bin" / "helm")))
CHECKOV = Path(os.environ.get("CHECKOV", str(ROOT / ".venv-checkov" / "bin" / "checkov")))
MODELS_SCRIPT = ROOT / "tools" / "k8s-models" / "validate.mjs"
KUBE_VERSIONS = ("1.29.0", "1.33.0")
RELEASE = "chainlab"
NAMESPACE = "chainlab"
# Profiles rendered as if the cluster served these APIs (the others as a bare cluster).
API_VERSIONS: Mapping[str, Sequence[str]] = {"monitoring-crds": ("monitoring.coreos.com/v1",)}
MONITORING_GROUP = "monitoring.coreos.com/"
CHAOS_GROUP = "chaos-mesh.org/"
CHAOS_ACTIONS = {
    "PodChaos": {"pod-kill", "pod-failure", "container-kill"},
    "NetworkChaos": {"delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"},
}

Obj = dict[str, object]


@dataclass(frozen=True)
class BadValues:
    """A values override the schema must refuse, and what the error must say (the key's path, the bad value)."""

    label: str
    args: tuple[str, ...]
    expect: tuple[str, ...]


BAD_VALUES = (
    BadValues("negative miners", ("--set", "experiment.miners=-1"), ("/experiment/miners", "got -1")),
    BadValues("zero miners", ("--set", "experiment.miners=0"), ("/experiment/miners", "got 0")),
    BadValues("negative validators", ("--set", "experiment.validators=-2"), ("/experiment/validators", "got -2")),
    BadValues("non-boolean gpu.enabled", ("--set-string", "gpu.enabled=yes"), ("/gpu/enabled", "want boolean")),
    BadValues("unknown pullPolicy", ("--set", "images.pullPolicy=Sometimes"), ("/images/pullPolicy", "IfNotPresent")),
    BadValues("gpu count 0", ("--set", "gpu.enabled=true", "--set", "gpu.count=0"), ("/gpu/count", "got 0")),
    BadValues("string port", ("--set-string", "storage.servicePort=7000"), ("/storage/servicePort", "want integer")),
    BadValues("port out of range", ("--set", "kubo.rpcPort=70000"), ("/kubo/rpcPort", "maximum")),
    BadValues("unknown top-level key", ("--set", "minerz.replicas=3"), ("additional properties 'minerz'",)),
    BadValues("unknown component key", ("--set", "gpu.fraction=0.5"), ("/gpu", "'fraction'")),
    BadValues("latest kubo tag", ("--set", "kubo.image.tag=latest"), ("/kubo/image/tag",)),
    BadValues("bad locust shape", ("--set", "locust.shape=ramp"), ("/locust/shape",)),
)


@dataclass
class Rendering:
    """One profile rendered for one Kubernetes version, and what validating its objects found."""

    profile: str
    kube_version: str
    objects: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    core_validated: int = 0
    monitoring_validated: int = 0
    chaos_validated: int = 0
    errors: list[str] = field(default_factory=list)


# The values files `make kind-up` / `make minikube-up` install with (deploy/), checked as profiles of their own.
DEPLOY_PROFILES: Mapping[str, Sequence[str]] = {
    "deploy-kind": ("deploy/kind/values.yaml",),
    "deploy-minikube-gpu": ("deploy/minikube/values.yaml", "deploy/minikube/gpu-values.yaml"),
    "deploy-chaos": ("deploy/k8s/chaos-values.yaml",),
}


def profiles() -> list[str]:
    """Every values profile by name: helm/chainlab/ci/<name>-values.yaml, then those of deploy/ that exist."""
    names = sorted(p.name.removesuffix("-values.yaml") for p in PROFILES_DIR.glob("*-values.yaml"))
    return names + [k for k, files in DEPLOY_PROFILES.items() if all((ROOT / f).exists() for f in files)]


def profile_files(profile: str) -> list[Path]:
    """The values files of a profile, in the order helm merges them."""
    if profile in DEPLOY_PROFILES:
        return [ROOT / f for f in DEPLOY_PROFILES[profile]]
    return [PROFILES_DIR / f"{profile}-values.yaml"]


def values_args(profile: str) -> list[str]:
    """helm's -f arguments of a profile."""
    return [arg for path in profile_files(profile) for arg in ("-f", str(path))]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the helm binary; its output, never raising on a non-zero exit."""
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


def template_args(profile: str, kube_version: str) -> list[str]:
    """`helm template` arguments of a profile at a Kubernetes version."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version]
    args += values_args(profile)
    for api in API_VERSIONS.get(profile, ()):
        args += ["--api-versions", api]
    return args


def parse_manifests(text: str) -> list[Obj]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [cast(Obj, doc) for doc in yaml.safe_load_all(text) if doc]


def render(profile: str, kube_version: str, *extra: str) -> list[Obj]:
    """The objects a profile renders to; RuntimeError with helm's message when it fails."""
    done = helm(*template_args(profile, kube_version), *extra)
    if done.returncode != 0:
        raise RuntimeError(f"helm template {profile} @ {kube_version}: {done.stderr.strip()}")
    return parse_manifests(done.stdout)


def lint(profile: str) -> str | None:
    """`helm lint --strict` of a profile: None when clean, else its output."""
    done = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values_args(profile))
    return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


def meta(obj: Obj) -> Mapping[str, object]:
    """An object's metadata."""
    return cast(Mapping[str, object], obj.get("metadata") or {})


def describe(obj: Obj) -> str:
    """kind/name of an object, for messages."""
    return f"{obj.get('kind')}/{meta(obj).get('name')}"


def validate_core(obj: Obj, kube_version: str) -> str | None:
    """kubernetes-validate --strict of one core object: None when valid, else the error."""
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{describe(obj)} @ {kube_version}: {exc.message} at {'.'.join(map(str, exc.path))}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return f"{describe(obj)} @ {kube_version}: no schema ({exc})"
    return None


def validate_monitoring(objs: Sequence[Obj]) -> list[str]:
    """prometheus-operator objects through tools/k8s-models; the errors (empty when all are valid)."""
    if not objs:
        return []
    done = subprocess.run(
        ["node", str(MODELS_SCRIPT)], input=json.dumps(objs), capture_output=True, text=True, check=False
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    errors = [f"{r['kind']}/{r['name']}: {r['error']}" for r in results if not r["ok"]]
    if done.returncode != 0 and not errors:
        errors.append(f"tools/k8s-models failed: {done.stderr.strip()[-500:]}")
    if len(results) != len(objs):
        errors.append(f"tools/k8s-models answered for {len(results)} of {len(objs)} objects")
    return errors


def validate_chaos(obj: Obj, namespace: str) -> list[str]:
    """Structural check of a Chaos Mesh object: kind, action, mode and a selector confined to our namespace."""
    name = describe(obj)
    kind = str(obj.get("kind"))
    if kind not in CHAOS_ACTIONS:
        return [f"{name}: unknown Chaos Mesh kind"]
    errors = []
    if meta(obj).get("namespace") != namespace or not meta(obj).get("name"):
        errors.append(f"{name}: metadata must name the object and put it in {namespace}")
    spec = cast(Mapping[str, object], obj.get("spec") or {})
    if spec.get("action") not in CHAOS_ACTIONS[kind]:
        errors.append(f"{name}: action {spec.get('action')!r} is not one of {sorted(CHAOS_ACTIONS[kind])}")
    targets = [spec] + ([cast(Mapping[str, object], spec["target"])] if "target" in spec else [])
    for target in targets:
        selector = cast(Mapping[str, object], target.get("selector") or {})
        if selector.get("namespaces") != [namespace]:
            errors.append(f"{name}: selector.namespaces must be [{namespace}], got {selector.get('namespaces')}")
        if not selector.get("labelSelectors") and not selector.get("pods"):
            errors.append(f"{name}: the selector picks no pods (labelSelectors or pods)")
        pods = cast(Mapping[str, object], selector.get("pods") or {})
        if set(pods) - {namespace}:
            errors.append(f"{name}: selector.pods reaches outside {namespace}")
        if target.get("mode") not in {"one", "all", "fixed", "fixed-percent", "random-max-percent"}:
            errors.append(f"{name}: mode {target.get('mode')!r} is not a Chaos Mesh mode")
    return errors


def check_rendering(profile: str, kube_version: str) -> tuple[Rendering, list[Obj]]:
    """Render a profile at a version and validate every object by its kind's validator."""
    result = Rendering(profile, kube_version)
    try:
        objs = render(profile, kube_version)
    except RuntimeError as exc:
        result.errors.append(str(exc))
        return result, []
    result.objects = len(objs)
    result.kinds = dict(Counter(str(o.get("kind")) for o in objs))
    monitoring = [o for o in objs if str(o.get("apiVersion", "")).startswith(MONITORING_GROUP)]
    for obj in objs:
        api = str(obj.get("apiVersion", ""))
        if api.startswith(MONITORING_GROUP):
            continue
        if api.startswith(CHAOS_GROUP):
            errors = validate_chaos(obj, NAMESPACE)
            result.chaos_validated += not errors
            result.errors += errors
            continue
        error = validate_core(obj, kube_version)
        if error is None:
            result.core_validated += 1
        else:
            result.errors.append(error)
    errors = validate_monitoring(monitoring)
    result.monitoring_validated = len(monitoring) if not errors else 0
    result.errors += errors
    return result, objs


@dataclass(frozen=True)
class Skip:
    """A checkov check accepted for this chart: why, and optionally only for some resources or profiles."""

    why: str
    only: tuple[str, ...] = ()  # Kind/name-suffix, e.g. Job/loader
    profiles: tuple[str, ...] = ()

    def covers(self, resource: str, profile: str) -> bool:
        """Whether a finding on resource (checkov's Kind.namespace.name) in profile is justified by this skip."""
        kind, _, rest = resource.partition(".")
        name = rest.partition(".")[2]
        if self.profiles and profile not in self.profiles:
            return False
        return not self.only or any(
            kind == k and name.endswith(f"-{suffix}") for k, _, suffix in (o.partition("/") for o in self.only)
        )


def load_skips() -> dict[str, Skip]:
    """checkov check IDs skipped for this chart, each with its one-line justification."""
    data = cast(Mapping[str, Mapping[str, object]], yaml.safe_load(SKIPS_FILE.read_text()) or {})
    skips = {}
    for check, entry in data.items():
        why = str(entry.get("why", "")).strip()
        if not why:
            raise ValueError(f"{SKIPS_FILE.name}: no justification (why) for {check}")
        only = tuple(map(str, cast(Sequence[object], entry.get("only", ()))))
        skips[str(check)] = Skip(why, only, tuple(map(str, cast(Sequence[object], entry.get("profiles", ())))))
    return skips


@dataclass
class CheckovSummary:
    """checkov's findings over the rendered manifests: failures split by whether a skip justifies them."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_by_check: dict[str, int] = field(default_factory=dict)
    unjustified: list[str] = field(default_factory=list)
    unused_skips: list[str] = field(default_factory=list)
    error: str | None = None


def run_checkov(manifest_dir: Path, skips: Mapping[str, Skip]) -> CheckovSummary:
    """checkov (kubernetes framework) over every rendered manifest in manifest_dir."""
    summary = CheckovSummary()
    done = subprocess.run(
        [str(CHECKOV), "-d", str(manifest_dir), "--framework", "kubernetes", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        summary.error = f"checkov gave no JSON (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        return summary
    reports = report if isinstance(report, list) else [report]
    seen: set[str] = set()
    for rep in reports:
        results = rep.get("results", {})
        summary.passed += len(results.get("passed_checks", []))
        for item in results.get("failed_checks", []):
            check = str(item["check_id"])
            resource = str(item.get("resource"))
            rendering = Path(str(item.get("file_path", ""))).stem  # <profile>-<kube version>
            profile = rendering.rsplit("-", 1)[0]
            where = f"{check} {resource} ({rendering}): {item['check_name']}"
            if check in skips and skips[check].covers(resource, profile):
                seen.add(check)
                summary.skipped += 1
                summary.skipped_by_check[check] = summary.skipped_by_check.get(check, 0) + 1
            else:
                summary.failed += 1
                summary.unjustified.append(where)
    summary.unused_skips = sorted(set(skips) - seen)
    return summary


def check_rejections() -> list[dict[str, object]]:
    """Each bad values override through `helm template`: it must fail, naming the key and the bad value."""
    out = []
    for bad in BAD_VALUES:
        done = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *bad.args)
        message = done.stderr.strip()
        ok = done.returncode != 0 and all(e in message for e in bad.expect)
        error_lines = [line for line in message.splitlines() if line.startswith("- at")]
        out.append({"case": bad.label, "rejected": done.returncode != 0, "ok": ok, "message": "; ".join(error_lines)})
    return out


def check_package() -> str | None:
    """`helm package` copies the files/ symlinks' targets in: the packaged chart must render what the folder does."""
    with tempfile.TemporaryDirectory(prefix="chart-package-") as tmp:
        done = helm("package", str(CHART), "-d", tmp)
        packages = list(Path(tmp).glob("chainlab-*.tgz"))
        if done.returncode != 0 or len(packages) != 1:
            return f"helm package failed: {done.stderr.strip()[-500:]}"
        args = ["--namespace", NAMESPACE, "--api-versions", "monitoring.coreos.com/v1", "--set", "locust.enabled=true"]
        packaged = helm("template", RELEASE, str(packages[0]), *args)
        folder = helm("template", RELEASE, str(CHART), *args)
    if packaged.returncode != 0 or packaged.stdout != folder.stdout:
        return "the packaged chart renders differently from helm/chainlab (a files/ symlink not followed?)"
    return None


def write_renderings(renderings: Iterator[tuple[str, list[Obj]]], folder: Path) -> None:
    """One manifest file per rendering, for checkov."""
    for name, objs in renderings:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))


def main() -> int:
    """Run every check, write runs/chart-check.json, print the table; 0 when all passed."""
    began = time.monotonic()
    if not HELM.exists():
        print(f"no helm binary at {HELM}: run `make chart-check` (it installs tools/helm)", file=sys.stderr)
        return 1
    lints = {p: lint(p) for p in profiles()}
    renderings: list[Rendering] = []
    manifests: dict[str, list[Obj]] = {}
    for profile in profiles():
        for version in KUBE_VERSIONS:
            result, objs = check_rendering(profile, version)
            renderings.append(result)
            manifests[f"{profile}-{version}"] = objs
    skips = load_skips()
    with tempfile.TemporaryDirectory(prefix="chart-check-") as tmp:
        # Renderings differ across versions only by what the chart gates on the version: checkov sees one each.
        latest = KUBE_VERSIONS[-1]
        write_renderings(((k, v) for k, v in manifests.items() if k.endswith(latest)), Path(tmp))
        checkov = run_checkov(Path(tmp), skips)
    rejections = check_rejections()
    package_error = check_package()
    wall = time.monotonic() - began
    ok = (
        all(v is None for v in lints.values())
        and all(not r.errors for r in renderings)
        and checkov.error is None
        and not checkov.unjustified
        and not checkov.unused_skips
        and all(r["ok"] for r in rejections)
        and package_error is None
    )
    summary = {
        "ok": ok,
        "wall_seconds": round(wall, 1),
        "kube_versions": list(KUBE_VERSIONS),
        "profiles": profiles(),
        "lint": {p: ("ok" if v is None else v) for p, v in lints.items()},
        "renderings": [asdict(r) for r in renderings],
        "objects_validated": {
            "core": sum(r.core_validated for r in renderings),
            "monitoring": sum(r.monitoring_validated for r in renderings),
            "chaos": sum(r.chaos_validated for r in renderings),
        },
        "checkov": asdict(checkov) | {"skips": {k: asdict(v) for k, v in skips.items()}},
        "schema_rejections": rejections,
        "package": package_error or "ok",
    }
    out = ROOT / "runs" / "chart-check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print_table(lints, renderings, checkov, rejections, wall)
    print(f"helm package (files/ symlinks resolved, same rendering): {package_error or 'ok'}")
    print(f"summary: {out.relative_to(ROOT)}")
    return 0 if ok else 1


def print_table(
    lints: Mapping[str, str | None],
    renderings: Sequence[Rendering],
    checkov: CheckovSummary,
    rejections: Sequence[Mapping[str, object]],
    wall: float,
) -> None:
    """The human summary: one row per profile x version, then checkov and the schema rejections."""
    print(f"{'profile':<20} {'kube':<8} {'lint':<5} {'objects':>7} {'core':>5} {'monit':>5} {'chaos':>5}  result")
    for r in renderings:
        lint_ok = "ok" if lints.get(r.profile) is None else "FAIL"
        verdict = "ok" if not r.errors else f"{len(r.errors)} error(s): {r.errors[0][:120]}"
        print(
            f"{r.profile:<20} {r.kube_version:<8} {lint_ok:<5} {r.objects:>7} {r.core_validated:>5} "
            f"{r.monitoring_validated:>5} {r.chaos_validated:>5}  {verdict}"
        )
    for profile, message in lints.items():
        if message is not None:
            print(f"lint {profile}: {message[-1500:]}")
    print(
        f"checkov: {checkov.passed} passed, {checkov.failed} failed (unjustified), {checkov.skipped} skipped "
        f"(justified in {SKIPS_FILE.relative_to(ROOT)}: {len(checkov.skipped_by_check)} checks)"
    )
    for line in checkov.unjustified[:40]:
        print(f"  UNJUSTIFIED {line}")
    for check in checkov.unused_skips:
        print(f"  UNUSED SKIP {check}: remove it from {SKIPS_FILE.name}")
    if checkov.error:
        print(f"  ERROR {checkov.error}")
    rejected = sum(bool(case["ok"]) for case in rejections)
    print(f"schema: {rejected}/{len(rejections)} bad values rejected with a message naming them")
    for case in rejections:
        if not case["ok"]:
            print(f"  NOT REJECTED AS EXPECTED: {case['case']}: {case['message'] or 'accepted'}")
    print(f"chart-check wall time: {wall:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
