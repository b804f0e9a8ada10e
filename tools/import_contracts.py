"""Architecture fitness function: an import-linter contract that keeps a package standard-library only.

import-linter's own contract types forbid named modules; none says "nothing but the standard
library", which is the rule for a domain model (docs/CONVENTIONS.md, "Layers, checked"). This
contract type says it, so a new third-party dependency cannot slip into a domain package just
because nobody thought to list it.

Registered in pyproject.toml under `[tool.importlinter] contract_types` as
`standard_library_only`; `lint-imports` (run by `make lint`) imports this module from the
repository root.
"""

from __future__ import annotations

import sys
from typing import Any, cast

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck, InvalidContractOptions
from importlinter.domain.helpers import module_expressions_to_modules
from importlinter.domain.imports import ImportExpression, ModuleExpression


class StandardLibraryOnlyContract(Contract):
    """Each source package may import only itself and the standard library.

    Options:
        source_modules: the packages to check (module expressions; each must exist). Every
            module inside a package may import any other module inside the same package.
        ignore_imports: import expressions to leave out, as in import-linter's own contracts;
            each needs a comment in the configuration saying why (optional).

    Only direct imports are checked: a package that imports nothing but the standard library
    and itself cannot reach anything else indirectly. Needs `include_external_packages = true`
    at the top of the configuration; without it the graph holds no standard-library or
    third-party modules, and the contract would pass whatever the code imports.
    """

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def validate(self) -> None:
        """Refuse a configuration under which the contract could not fail."""
        if str(self.session_options.get("include_external_packages")).lower() != "true":
            raise InvalidContractOptions(
                {
                    "source_modules": (
                        "standard_library_only needs include_external_packages = true: "
                        "without it external imports are not in the graph."
                    )
                }
            )

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        """Find every direct import from a source package to a module outside it and the stdlib."""
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=list(cast("set[ImportExpression] | None", self.ignore_imports) or ()),
            unmatched_alerting=AlertLevel.ERROR,
        )
        packages = module_expressions_to_modules(
            graph,
            cast("set[ModuleExpression]", self.source_modules),
            raise_if_unmatched=True,
        )
        violations: list[dict[str, Any]] = []
        for package in sorted(module.name for module in packages):
            inside = {package} | graph.find_descendants(package)
            for importer in sorted(inside):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported in inside or _is_standard_library(imported):
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    violations.append(
                        {
                            "importer": importer,
                            "imported": imported,
                            "line_numbers": tuple(sorted(d["line_number"] for d in details)),
                        }
                    )
            output.verbose_print(verbose, f"{package}: {len(inside)} modules checked.")
        return ContractCheck(
            kept=not violations,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"violations": violations},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        """Print one line per offending import: `importer -> imported (l.N)`."""
        for violation in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in violation["line_numbers"]) or "l.?"
            output.print_error(
                f"{violation['importer']} -> {violation['imported']} ({lines})", bold=False
            )
            output.new_line()


def _is_standard_library(module: str) -> bool:
    """Whether `module` (dotted name) belongs to this interpreter's standard library."""
    return module.partition(".")[0] in sys.stdlib_module_names
