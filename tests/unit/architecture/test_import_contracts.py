"""Architecture fitness functions: the import contracts hold, and a layer-breaking import fails them by name.

The contracts live in pyproject.toml (`[tool.importlinter]`) and run in `make lint`; these
tests run the same `lint-imports` so that `make test` (and so CI) fails on a broken layer
too, and they prove each kind of contract can fail by planting one bad import in a copy of
the source tree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter.domain.contract import InvalidContractOptions

from tools.import_contracts import StandardLibraryOnlyContract

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
NAMES = {contract["id"]: contract["name"] for contract in CONFIG["contracts"]}


def _lint_imports(
    cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # A wide console keeps each contract's name on one line of the report.
    env = {**os.environ, "COLUMNS": "1000", **(extra_env or {})}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_repository_keeps_every_import_contract() -> None:
    result = _lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    for name in NAMES.values():
        assert f"{name} KEPT" in result.stdout


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """The root packages, pyproject.toml and tools/ copied under tmp_path (packages in src/)."""
    for package in CONFIG["root_packages"]:
        spec = importlib.util.find_spec(package)
        assert spec is not None
        assert spec.submodule_search_locations is not None
        shutil.copytree(
            next(iter(spec.submodule_search_locations)),
            tmp_path / "src" / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(
        ROOT / "tools", tmp_path / "tools", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # adapters import the domain, so through it they would reach the entrypoints too
        (
            "member/domain/model.py",
            "import member.entrypoints",
            {"domain-stdlib", "service-layers", "adapters-below-entrypoints"},
        ),
        ("board/domain/events.py", "import sqlalchemy", {"domain-stdlib"}),
        ("qna/domain/model.py", "import chassis.db", {"domain-stdlib"}),
        ("qna/service_layer/handlers.py", "import qna.entrypoints.api", {"service-layers"}),
        ("board/views.py", "import board.service_layer.handlers", {"service-layers"}),
        ("member/config.py", "import member.service_layer.handlers", {"service-layers"}),
        (
            "board/adapters/repository.py",
            "import board.bootstrap",
            {"adapters-below-entrypoints", "service-layers"},
        ),
        ("saga/orchestrator.py", "import qna.domain.model", {"deployables-independent"}),
        (
            "chassis/pagination.py",
            "import gateway.routes",
            {"chassis-imports-no-deployable", "deployables-independent"},
        ),
        ("board/entrypoints/api.py", "import gevent", {"services-without-gevent"}),
        ("chassis/pagination.py", "import locust", {"services-without-gevent"}),
        ("loadgen/pacing.py", "import locust", {"loadgen-pure-parts"}),
        ("loadgen/locustfile.py", "import chassis.db", {"loadgen-public-api-only"}),
    ],
)
def test_a_bad_import_breaks_exactly_the_contracts_that_name_its_rule(
    source_copy: Path, module: str, statement: str, broken: set[str]
) -> None:
    target = source_copy / "src" / module
    target.write_text(target.read_text() + f"\n{statement}  # planted by the test\n")

    result = _lint_imports(source_copy, {"PYTHONPATH": str(source_copy / "src")})

    assert result.returncode != 0, result.stdout + result.stderr
    reported_broken = {cid for cid, name in NAMES.items() if f"{name} BROKEN" in result.stdout}
    assert reported_broken == broken, result.stdout


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    """A graph of the package `svc` (svc.domain.model, svc.domain.events) with `imports` added."""
    graph = grimp.ImportGraph()
    for module in ("svc", "svc.domain", "svc.domain.model", "svc.domain.events", "svc.adapters"):
        graph.add_module(module)
    for line, (importer, imported) in enumerate(imports, start=1):
        if imported not in graph.modules:
            graph.add_module(imported, is_squashed=True)
        graph.add_import(
            importer=importer, imported=imported, line_number=line, line_contents="import ..."
        )
    return graph


def _contract(include_external_packages: object = True) -> StandardLibraryOnlyContract:
    return StandardLibraryOnlyContract(
        name="svc.domain imports only the standard library",
        session_options={"include_external_packages": include_external_packages},
        contract_options={"source_modules": ["svc.domain"]},
    )


def test_standard_library_and_own_package_imports_keep_the_contract() -> None:
    graph = _graph(
        ("svc.domain.model", "datetime"),
        ("svc.domain.model", "collections"),
        ("svc.domain.model", "svc.domain.events"),
        ("svc.domain.events", "__future__"),
    )

    assert _contract().check(graph, verbose=False).kept


def test_third_party_and_other_layer_imports_break_the_contract_with_their_lines() -> None:
    graph = _graph(
        ("svc.domain.model", "datetime"),
        ("svc.domain.model", "pydantic"),
        ("svc.domain.events", "svc.adapters"),
    )

    check = _contract().check(graph, verbose=False)

    assert not check.kept
    assert check.metadata["violations"] == [
        {"importer": "svc.domain.events", "imported": "svc.adapters", "line_numbers": (3,)},
        {"importer": "svc.domain.model", "imported": "pydantic", "line_numbers": (2,)},
    ]


@pytest.mark.parametrize("setting", [False, "False", None])
def test_the_contract_refuses_a_graph_without_external_packages(setting: object) -> None:
    # Without them no standard-library or third-party import is in the graph: the contract
    # would pass whatever the domain imports.
    with pytest.raises(InvalidContractOptions):
        _contract(include_external_packages=setting)
