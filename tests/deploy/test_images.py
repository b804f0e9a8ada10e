"""The one Dockerfile, image by image: pinned bases, uv from the lockfile, a non-root user, the CLI.

Every image is built from the root ``Dockerfile`` with ``--build-arg DEPLOYABLE=<name>``, so
each check below first resolves what that build makes of the file (``resolve``): the stages
the image starts from, in order, with build arguments and environment variables expanded
where the builder (or a ``RUN``'s shell) expands them, and only where they are in scope. A
stage that forgot ``ARG DEPLOYABLE``, a ``CMD`` cleared by a later ``ENTRYPOINT``, a port
or a label overridden by a shared stage: each shows in one image's resolved instructions.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from deploy.images import build
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
    subcommands,
    workspace_members,
)

pytestmark = pytest.mark.deploy

DOCKERFILE = ROOT / "Dockerfile"
#: The six deployables and the load generator (a tool under compose's `loadgen` profile).
ALL_IMAGES = (*IMAGES, "loadgen")
FOLDERS = {**DEPLOYABLE_DIRS, "loadgen": "loadgen"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|(^|_)KEY($|_)|CREDENTIAL", re.IGNORECASE)
#: Instructions whose arguments the builder expands (docs.docker.com "Environment
#: replacement"), plus RUN, whose shell expands the ARGs and ENVs in scope.
EXPANDED = {"ADD", "COPY", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "RUN"}


# ------------------------------------------------------------------ resolving the Dockerfile


@dataclass(frozen=True)
class Stage:
    """One stage as a build resolves it: ``base`` is a stage name or an image reference."""

    name: str | None
    base: str
    instructions: tuple[Instruction, ...]


def _expand(value: str, scope: dict[str, str]) -> str:
    """``$X``/``${X}`` replaced by X's value in scope; a name out of scope stays as written
    (the builder would make it empty: either way the checks below see it is missing)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: scope.get(m[1] or m[2], m[0]), value)


@cache
def stages(deployable: str) -> tuple[Stage, ...]:
    """The Dockerfile's stages for ``--build-arg DEPLOYABLE=<deployable>``, with Docker's
    scoping: a global ARG (before the first FROM) reaches FROM lines, and a stage only
    through its own ``ARG NAME``; ENV is inherited by the stages built FROM a stage."""
    build_args = {"DEPLOYABLE": deployable}
    instructions = dockerfile_instructions(DOCKERFILE)
    first_from = next(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    global_defaults: dict[str, str] = {}
    for ins in instructions[:first_from]:
        assert ins.keyword == "ARG", f"only ARG may precede the first FROM, not {ins.keyword}"
        key, _, default = ins.value.partition("=")
        global_defaults[key] = build_args.get(key, default)
    found: list[Stage] = []
    env_of: dict[str, dict[str, str]] = {}
    name: str | None = None
    base, body, args, env = "", list[Instruction](), dict[str, str](), dict[str, str]()
    for ins in [*instructions[first_from:], Instruction("FROM", "end-of-file")]:
        if ins.keyword == "FROM":
            if base:
                found.append(Stage(name, base, tuple(body)))
                if name:
                    env_of[name] = env
            words = _expand(ins.value, global_defaults).split()
            base, name, body = words[0], (words[2] if len(words) > 2 else None), []
            args, env = {}, dict(env_of.get(base, {}))
            continue
        value = _expand(ins.value, {**args, **env}) if ins.keyword in EXPANDED else ins.value
        if ins.keyword == "ARG":
            key, has_default, default = ins.value.partition("=")
            args[key] = build_args.get(
                key, default if has_default else global_defaults.get(key, "")
            )
        elif ins.keyword == "ENV":
            env.update(env_assignments(value))
        body.append(Instruction(ins.keyword, value))
    return tuple(found)


def chain(deployable: str, stage_name: str | None = None) -> list[Instruction]:
    """The instructions that make a stage (the last one, the image, by default): those of
    each stage it is built FROM, first to last."""
    by_name = {s.name: s for s in stages(deployable) if s.name}
    stage = by_name[stage_name] if stage_name else stages(deployable)[-1]
    parent = by_name.get(stage.base)
    return [*(chain(deployable, parent.name) if parent else []), *stage.instructions]


def image(deployable: str) -> list[Instruction]:
    return chain(deployable)


def build_stage(deployable: str) -> list[Instruction]:
    """What the image's ``COPY --from=build`` copies from."""
    (copy,) = [i.value for i in image(deployable) if i.keyword == "COPY" and "--from=" in i.value]
    assert copy == "--from=build /app /app", "the code is copied from the build stage as is"
    return chain(deployable, "build")


def values(ins: list[Instruction], keyword: str) -> list[str]:
    return [i.value for i in ins if i.keyword == keyword]


def env_of(ins: list[Instruction]) -> dict[str, str]:
    return dict(pair for value in values(ins, "ENV") for pair in env_assignments(value))


def labels_of(ins: list[Instruction]) -> dict[str, str]:
    """The labels an image ends with (a later LABEL of a key overrides an earlier one)."""
    return dict(pair for value in values(ins, "LABEL") for pair in env_assignments(value))


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


# ------------------------------------------------------------------ one source


def test_one_dockerfile_builds_every_image_and_no_other_dockerfile_exists() -> None:
    """The images `make images` builds are the Dockerfile's `image-<name>` stages, each with
    its `code-<name>` stage; no deployable keeps a Dockerfile of its own that could drift."""
    names = [s.name for s in stages("member") if s.name]
    assert {n.removeprefix("image-") for n in names if n.startswith("image-")} == set(ALL_IMAGES)
    assert {n.removeprefix("code-") for n in names if n.startswith("code-")} == set(ALL_IMAGES)
    assert set(build.IMAGES) == set(ALL_IMAGES)
    assert build.DOCKERFILE == "Dockerfile"
    strays = sorted(
        str(path.relative_to(ROOT))
        for depth in ("*", "*/*", "*/*/*")
        for path in ROOT.glob(f"{depth}/*Dockerfile*")
        if not path.relative_to(ROOT).parts[0].startswith(".")
        # the compose test's infrastructure stand-ins are not images of ours (docs/deploy.md §3)
        and path.relative_to(ROOT).parts[:2] != ("deploy", "compose")
    )
    assert not strays, f"one Dockerfile for every image; found {strays}"


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_each_image_is_built_from_its_own_stages(deployable: str) -> None:
    """The last stage starts from `image-<name>`, the build from `code-<name>`: a build with
    DEPLOYABLE=<name> reaches no other image's stage."""
    by_name = {s.name: s for s in stages(deployable) if s.name}
    assert stages(deployable)[-1].base == f"image-{deployable}"
    assert by_name["build"].base == f"code-{deployable}"
    reached, todo = set(), [stages(deployable)[-1].base, "build"]
    while todo:
        name = todo.pop()
        if name in by_name and name not in reached:
            reached.add(name)
            todo.append(by_name[name].base)
    others = {f"{kind}-{n}" for kind in ("image", "code") for n in ALL_IMAGES if n != deployable}
    assert not reached & others, sorted(reached & others)


# ------------------------------------------------------------------ each image


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


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_runs_as_a_non_root_numeric_user(deployable: str) -> None:
    (user,) = values(image(deployable), "USER")
    assert user == "10001:10001", f"USER {user}: numeric, so runAsNonRoot can be verified"


@pytest.mark.parametrize("deployable", IMAGES)
def test_entrypoint_is_the_cli_and_the_default_process_is_the_api(deployable: str) -> None:
    ins = image(deployable)
    entrypoints = [i for i, x in enumerate(ins) if x.keyword == "ENTRYPOINT"]
    cmds = [i for i, x in enumerate(ins) if x.keyword == "CMD"]
    assert entrypoints, "an ENTRYPOINT"
    assert cmds, "a CMD"
    assert json.loads(ins[entrypoints[-1]].value) == [deployable], "exec form, the CLI itself"
    # A later ENTRYPOINT clears the CMD an image inherits: the CMD must come after it.
    assert cmds[-1] > entrypoints[-1], "CMD before ENTRYPOINT is cleared by it"
    assert json.loads(ins[cmds[-1]].value) == ["api"]
    assert ("api",) in {c[1:] for c in conventions_commands()[deployable]}


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_no_secret_is_baked_into_the_image(deployable: str) -> None:
    for ins in [*image(deployable), *build_stage(deployable)]:
        if ins.keyword in ("ENV", "ARG"):
            pairs = list(env_assignments(ins.value)) or [(ins.value.split("=")[0], "")]
            for key, value in pairs:
                assert not (SECRET_NAME.search(key) and value), f"{ins.keyword} {key} holds a value"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text
    assert ".env" not in text


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_base_images_are_pinned_to_exact_versions(deployable: str) -> None:
    args = dockerfile_args(dockerfile_instructions(DOCKERFILE))
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    names = {s.name for s in stages(deployable) if s.name}
    for stage in stages(deployable):
        assert stage.base in names | {args["PYTHON_IMAGE"], args["UV_IMAGE"]}, (
            f"FROM {stage.base}: a stage of this file or a pinned ARG"
        )
    # Both stages of the image use the same Python: the venv's interpreter path must hold.
    bases = {s.name: s.base for s in stages(deployable)}
    assert bases["runtime"] == bases["deps"] == args["PYTHON_IMAGE"]


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_installs_from_the_lockfile_without_dev_dependencies(deployable: str) -> None:
    ins = build_stage(deployable)
    own = {FOLDERS[deployable]} | (set() if deployable == "loadgen" else {"libs/chassis"})
    runs = values(ins, "RUN")
    deps = f"uv sync --frozen --no-dev --no-install-workspace --package {deployable}"
    install = f"uv sync --frozen --no-dev --package {deployable}"
    assert any(deps in run for run in runs), f"{deps!r} not in {runs}"
    assert any(install in r and "compileall" in r for r in runs), f"{install!r} not in {runs}"
    assert all("--mount=type=cache,target=/root/.cache/uv" in r for r in runs if "uv sync" in r)
    copies = [c for c in values(ins, "COPY") if not c.startswith("--from")]
    assert "pyproject.toml uv.lock ./" in copies
    for member in workspace_members():
        assert f"{member}/pyproject.toml {member}/pyproject.toml" in copies, member
    # Two layers: the dependencies from the manifests alone (uv reads every one of them),
    # then the code; so editing code never reinstalls a dependency.
    at = {i: x.value for i, x in enumerate(ins) if x.keyword in ("COPY", "RUN")}
    (deps_at,) = [i for i, v in at.items() if deps in v]
    manifests = [i for i, v in at.items() if v.endswith(("pyproject.toml", "uv.lock ./"))]
    code = [i for i, v in at.items() if v.split()[0] in own]
    assert max(manifests) < deps_at < min(code), "manifests, dependencies, then the code"
    sources = {c.split()[0] for c in copies if not c.endswith(("pyproject.toml", "./"))}
    assert sources == own, "only the chassis and its own folder (loadgen: no chassis)"


@pytest.mark.parametrize("deployable", IMAGES)
def test_runtime_is_ready_for_a_read_only_root_filesystem(deployable: str) -> None:
    ins = image(deployable)
    env = env_of(ins)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["SERVICE_NAME"] == deployable
    http, worker = conventions_ports()[deployable]
    assert env["HTTP_PORT"] == str(http)
    assert env.get("WORKER_PORT") == (str(worker) if worker else None)
    assert values(ins, "EXPOSE")[-1].split() == [str(p) for p in (http, worker) if p]
    workdir = values(ins, "WORKDIR")[-1]
    assert workdir == f"/app/{DEPLOYABLE_DIRS[deployable]}", "migrations/ and alembic.ini beside it"
    # Code copied from the build stage stays root-owned: the app user cannot modify it.
    assert "--from=build /app /app" in values(ins, "COPY")
    # Bytecode compiled at build time: uv's for the dependencies, compileall for our code.
    build_env = env_of(build_stage(deployable))
    assert build_env["UV_COMPILE_BYTECODE"] == "1"
    assert "--invalidation-mode unchecked-hash" in " ".join(values(build_stage(deployable), "RUN"))


def test_the_member_image_owns_the_jwt_key_mount_point() -> None:
    runs = " ".join(values(image("member"), "RUN"))
    assert "install -d -o 10001 -g 10001 -m 0700 /etc/member/jwt" in runs
    for other in ALL_IMAGES:
        if other != "member":
            assert "/etc/member" not in " ".join(values(image(other), "RUN")), other


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_oci_labels(deployable: str) -> None:
    labels = labels_of(image(deployable))
    for key in ("title", "description", "version", "revision", "created", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.title"] == f"msa-board {deployable}"
    docs = "loadgen.md" if deployable == "loadgen" else "deploy.md"
    assert labels["org.opencontainers.image.documentation"].endswith(f"/docs/{docs}")


def test_each_image_has_a_description_of_its_own() -> None:
    descriptions = [labels_of(image(d))["org.opencontainers.image.description"] for d in ALL_IMAGES]
    assert len(set(descriptions)) == len(ALL_IMAGES), descriptions


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_labels_come_last(deployable: str) -> None:
    """The labels that change with each build (version, revision, date) are the image's last
    instructions, so a new revision rebuilds no layer and no other stage."""
    ins = image(deployable)
    per_build = [
        i
        for i, x in enumerate(ins)
        if x.keyword == "ARG" and x.value.startswith(("VERSION", "REVISION", "CREATED"))
    ]
    assert len(per_build) == 3
    assert all(x.keyword in ("ARG", "LABEL") for x in ins[min(per_build) :])
    assert not any(
        re.match(r"(VERSION|REVISION|CREATED)\b", x.value)
        for s in stages(deployable)[:-1]
        for x in s.instructions
        if x.keyword == "ARG"
    ), "only the last stage reads the per-build arguments"


def test_dockerignore_keeps_local_state_and_tests_out() -> None:
    lines = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".local/", "**/.venv", "tests/", "**/__pycache__", ".git", ".env"):
        assert pattern in lines, pattern
    assert not any("migrations" in line or "alembic" in line for line in lines)
    assert "Dockerfile" not in lines


def test_the_load_generator_image_is_built_like_the_others() -> None:
    """loadgen (a tool under compose's `loadgen` profile, not a deployable): the same bases,
    user and labels, its CLI with no default arguments, no listener settings."""
    ins = image("loadgen")
    assert json.loads(values(ins, "ENTRYPOINT")[-1]) == ["loadgen"]
    assert json.loads(values(ins, "CMD")[-1]) == []
    env = env_of(ins)
    assert env["GATEWAY_URL"] == "http://gateway:8000"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert not {"HTTP_HOST", "HTTP_PORT", "SERVICE_NAME"} & set(env)
    assert not values(ins, "EXPOSE")
    assert values(ins, "WORKDIR")[-1] == "/tmp"


def test_the_python_base_matches_the_lockfile_and_its_label() -> None:
    """A Python of the lockfile's minor version, and the base.name label naming that image."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    minor = re.fullmatch(r"==(\d+\.\d+)\.\*", lock["requires-python"])
    assert minor, lock["requires-python"]
    args = dockerfile_args(dockerfile_instructions(DOCKERFILE))
    assert args["PYTHON_IMAGE"].startswith(f"python:{minor.group(1)}.")
    assert build.dockerfile_defaults() == args
    for deployable in ALL_IMAGES:
        assert labels_of(image(deployable))["org.opencontainers.image.base.name"] == (
            f"docker.io/library/{args['PYTHON_IMAGE']}"
        ), deployable


def test_ci_and_make_sync_install_the_uv_the_images_use() -> None:
    """`.ci/run` and `make sync` install the uv release the Dockerfile copies from
    ghcr.io/astral-sh/uv, so CI, a developer's machine and the images resolve the lock alike."""
    args = dockerfile_args(dockerfile_instructions(DOCKERFILE))
    version = args["UV_IMAGE"].rsplit(":", 1)[1]
    for path in (ROOT / ".ci" / "run", ROOT / "Makefile"):
        pins = set(re.findall(r"uv==([\d.]+)", path.read_text(encoding="utf-8")))
        assert pins == {version}, f"{path.name} installs uv {pins or 'unpinned'}, images {version}"


@pytest.mark.parametrize("deployable", ALL_IMAGES)
def test_make_images_reads_the_files_the_image_is_built_from(deployable: str) -> None:
    """The driver's inputs digest covers the image's own code and no other image's folder,
    so an edit rebuilds the images it changes (and a stale image is never kept)."""
    paths = set(build.copied_paths(deployable))
    assert {"Dockerfile", "uv.lock", FOLDERS[deployable]} <= paths
    assert ("libs/chassis" in paths) == (deployable != "loadgen")
    others = {FOLDERS[n] for n in ALL_IMAGES if n != deployable} - {FOLDERS[deployable]}
    assert not paths & others, sorted(paths & others)


def test_the_uv_stand_in_takes_the_pinned_versions_manylinux_wheel_for_this_machine() -> None:
    """The stand-in's uv comes from PyPI's Simple API (pip is not in the environment `make
    test` runs in): the pinned version's manylinux wheel for the machine, never a yanked one,
    another version's or a musl one."""
    from deploy.images.standins import uv_wheel_url

    def file(name: str, digest: str, **extra: object) -> dict[str, object]:
        return {
            "filename": name,
            "url": f"https://files/{name}",
            "hashes": {"sha256": digest},
            **extra,
        }

    index = {
        "files": [
            file("uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl", "musl"),
            file("uv-0.13.8-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "old"),
            file("uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "arm"),
            file(
                "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "bad",
                yanked=True,
            ),
            file("uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "good"),
            file("uv-0.13.9.tar.gz", "sdist"),
        ]
    }
    url, digest = uv_wheel_url(index, "0.13.9", "x86_64")
    assert (url.rsplit("/", 1)[1], digest) == (
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "good",
    )
    assert uv_wheel_url(index, "0.13.9", "aarch64")[1] == "arm"
    with pytest.raises(LookupError):
        uv_wheel_url(index, "0.14.0", "x86_64")
