"""Dockerfiles: pinned bases, uv from the lockfile, a non-root user and the documented CLI."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.artifacts import (
    DEPLOYABLE_DIRS,
    IMAGES,
    ROOT,
    Instruction,
    console_script,
    conventions_commands,
    conventions_ports,
    dockerfile_args,
    dockerfile_instructions,
    env_assignments,
    final_stage,
    subcommands,
    workspace_members,
)

pytestmark = pytest.mark.deploy

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|(^|_)KEY($|_)|CREDENTIAL", re.IGNORECASE)


def dockerfile(deployable: str) -> Path:
    return ROOT / DEPLOYABLE_DIRS[deployable] / "Dockerfile"


def instructions(deployable: str) -> list[Instruction]:
    return dockerfile_instructions(dockerfile(deployable))


def values(ins: list[Instruction], keyword: str) -> list[str]:
    return [i.value for i in ins if i.keyword == keyword]


def string_literals(source: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def offered_commands(deployable: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The first-level commands the deployable's console script offers, read from its own
    ``--help`` (a service's CLI builds them in ``chassis.cli.service_cli``, so its source need
    not spell them out)."""
    folder = ROOT / DEPLOYABLE_DIRS[deployable]
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, function = project["project"]["scripts"][deployable].partition(":")
    monkeypatch.setenv("COLUMNS", "1000")  # one usage line, unwrapped
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit) as exited:
        getattr(importlib.import_module(module), function)(["--help"])
    assert exited.value.code in (0, None), f"{deployable} --help failed"
    usage = re.search(r"^usage: \S+ \[-h\] \{([^}]*)\}", shown.getvalue(), re.MULTILINE)
    assert usage, f"{deployable} --help shows no commands:\n{shown.getvalue()}"
    return set(usage.group(1).split(","))


@pytest.mark.parametrize("deployable", [*IMAGES, "chassis"])
def test_cli_implements_the_documented_commands(
    deployable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command of docs/CONVENTIONS.md is offered by the deployable's CLI."""
    script, module = console_script(deployable)
    assert script == deployable
    assert module.is_file(), f"{module} (the `{deployable}` CLI) does not exist"
    missing = sorted(subcommands(deployable) - offered_commands(deployable, monkeypatch))
    assert not missing, f"the `{script}` CLI ({module}) has no command named {missing}"
    if deployable == "chassis":
        assert {"topics", "create", "dlq", "list", "replay"} <= string_literals(module)


@pytest.mark.parametrize("deployable", IMAGES)
def test_runs_as_a_non_root_numeric_user(deployable: str) -> None:
    (user,) = values(final_stage(instructions(deployable)), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: numeric, so runAsNonRoot can be verified"
    assert int(uid) >= 10000, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user


@pytest.mark.parametrize("deployable", IMAGES)
def test_entrypoint_is_the_cli_and_the_default_process_is_the_api(deployable: str) -> None:
    stage = final_stage(instructions(deployable))
    (entrypoint,) = values(stage, "ENTRYPOINT")
    (cmd,) = values(stage, "CMD")
    assert json.loads(entrypoint) == [deployable], "exec form, the CLI itself"
    assert json.loads(cmd) == ["api"]
    assert ("api",) in {c[1:] for c in conventions_commands()[deployable]}


@pytest.mark.parametrize("deployable", IMAGES)
def test_no_secret_is_baked_into_the_image(deployable: str) -> None:
    for ins in instructions(deployable):
        if ins.keyword in ("ENV", "ARG"):
            pairs = list(env_assignments(ins.value)) or [(ins.value.split("=")[0], "")]
            for key, value in pairs:
                assert not (SECRET_NAME.search(key) and value), f"{ins.keyword} {key} holds a value"
    text = dockerfile(deployable).read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text
    assert ".env" not in text


@pytest.mark.parametrize("deployable", IMAGES)
def test_base_images_are_pinned_to_exact_versions(deployable: str) -> None:
    ins = instructions(deployable)
    args = dockerfile_args(ins)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    for base in values(ins, "FROM"):
        image = base.split()[0]
        assert image in ("${PYTHON_IMAGE}", "${UV_IMAGE}"), f"FROM {image}: use the pinned ARGs"


@pytest.mark.parametrize("deployable", IMAGES)
def test_installs_from_the_lockfile_without_dev_dependencies(deployable: str) -> None:
    ins = instructions(deployable)
    runs = " ".join(values(ins, "RUN"))
    assert f"uv sync --frozen --no-dev --no-install-workspace --package {deployable}" in runs
    assert f"uv sync --frozen --no-dev --package {deployable}" in runs
    assert "compileall" in runs
    copies = values(ins, "COPY")
    assert "pyproject.toml uv.lock ./" in copies
    for member in workspace_members():
        assert f"{member}/pyproject.toml {member}/pyproject.toml" in copies, member
    sources = {
        c.split()[0]
        for c in copies
        if not c.startswith("--from") and not c.split()[0].endswith(("pyproject.toml", "uv.lock"))
    }
    assert sources == {"libs/chassis", DEPLOYABLE_DIRS[deployable]}, (
        "only chassis and its own folder"
    )


@pytest.mark.parametrize("deployable", IMAGES)
def test_runtime_is_ready_for_a_read_only_root_filesystem(deployable: str) -> None:
    stage = final_stage(instructions(deployable))
    env = dict(pair for value in values(stage, "ENV") for pair in env_assignments(value))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert env["HTTP_HOST"] == "0.0.0.0"
    http, worker = conventions_ports()[deployable]
    assert env["HTTP_PORT"] == str(http)
    assert env.get("WORKER_PORT") == (str(worker) if worker else None)
    (workdir,) = values(stage, "WORKDIR")
    assert workdir == f"/app/{DEPLOYABLE_DIRS[deployable]}", "migrations/ and alembic.ini beside it"
    # Code copied from the build stage stays root-owned: the app user cannot modify it.
    assert "COPY --from=build /app /app" in [f"COPY {v}" for v in values(stage, "COPY")]


@pytest.mark.parametrize("deployable", IMAGES)
def test_oci_labels(deployable: str) -> None:
    stage = final_stage(instructions(deployable))
    labels = dict(pair for value in values(stage, "LABEL") for pair in env_assignments(value))
    for key in ("title", "description", "version", "revision", "created", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_dockerignore_keeps_local_state_and_tests_out() -> None:
    lines = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".local/", "**/.venv", "tests/", "**/__pycache__", ".git", ".env"):
        assert pattern in lines, pattern
    assert not any("migrations" in line or "alembic" in line for line in lines)


def test_the_load_generator_image_is_built_like_the_others() -> None:
    """loadgen/Dockerfile (a tool under compose's `loadgen` profile, not a deployable): the same
    pinned bases, the lockfile without dev dependencies, a non-root numeric user, and its CLI."""
    ins = dockerfile_instructions(ROOT / "loadgen" / "Dockerfile")
    args = dockerfile_args(ins)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    assert {base.split()[0] for base in values(ins, "FROM")} <= {"${PYTHON_IMAGE}", "${UV_IMAGE}"}
    runs = " ".join(values(ins, "RUN"))
    assert "uv sync --frozen --no-dev --no-install-workspace --package loadgen" in runs
    assert "uv sync --frozen --no-dev --package loadgen" in runs
    copies = values(ins, "COPY")
    for member in workspace_members():
        assert f"{member}/pyproject.toml {member}/pyproject.toml" in copies, member
    stage = final_stage(ins)
    (user,) = values(stage, "USER")
    assert user == "10001:10001"
    assert json.loads(values(stage, "ENTRYPOINT")[0]) == ["loadgen"]


def test_every_image_names_the_same_bases_and_its_label_names_the_python_base() -> None:
    """One Python and one uv for every image (a bump that misses a Dockerfile fails here), a
    Python of the lockfile's minor version, and the base.name label naming that very image."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    minor = re.fullmatch(r"==(\d+\.\d+)\.\*", lock["requires-python"])
    assert minor, lock["requires-python"]
    bases = set()
    for path in [ROOT / DEPLOYABLE_DIRS[d] / "Dockerfile" for d in IMAGES]:
        ins = dockerfile_instructions(path)
        args = dockerfile_args(ins)
        bases.add((args["PYTHON_IMAGE"], args["UV_IMAGE"]))
        assert args["PYTHON_IMAGE"].startswith(f"python:{minor.group(1)}."), path
        labels = dict(
            pair for value in values(final_stage(ins), "LABEL") for pair in env_assignments(value)
        )
        assert labels["org.opencontainers.image.base.name"] == (
            f"docker.io/library/{args['PYTHON_IMAGE']}"
        ), path
    loadgen = dockerfile_args(dockerfile_instructions(ROOT / "loadgen" / "Dockerfile"))
    bases.add((loadgen["PYTHON_IMAGE"], loadgen["UV_IMAGE"]))
    assert len(bases) == 1, bases


def test_ci_and_make_sync_install_the_uv_the_images_use() -> None:
    """`.ci/run` and `make sync` install the uv release the Dockerfiles copy from
    ghcr.io/astral-sh/uv, so CI, a developer's machine and the images resolve the lock alike."""
    args = dockerfile_args(dockerfile_instructions(ROOT / "services" / "board" / "Dockerfile"))
    version = args["UV_IMAGE"].rsplit(":", 1)[1]
    for path in (ROOT / ".ci" / "run", ROOT / "Makefile"):
        pins = set(re.findall(r"uv==([\d.]+)", path.read_text(encoding="utf-8")))
        assert pins == {version}, f"{path.name} installs uv {pins or 'unpinned'}, images {version}"
