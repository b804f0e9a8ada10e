"""Generated documentation with a drift check: write the inventories, or fail with a diff when the committed ones are stale.

``python -m tools.inventory`` writes them; ``python -m tools.inventory --check`` writes nothing
and exits 1, printing a unified diff, when a committed file differs from what the code gives.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.inventory import api, asyncapi, events, events_md

ROOT = Path(__file__).resolve().parents[2]
#: Where the generated files live, relative to the repository root.
OUTPUT = Path("docs/learn/inventory")


def generate() -> dict[str, str]:
    """File name -> content of every generated file."""
    catalogue = events.catalogue()
    return {
        "api.md": api.render(api.services()),
        "events.md": events_md.render(catalogue),
        "asyncapi.yaml": asyncapi.render(catalogue),
    }


def drift(files: dict[str, str], directory: Path) -> str:
    """A unified diff from each file in ``directory`` to what it should be; "" when none."""
    diffs: list[str] = []
    for name, content in files.items():
        path = directory / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        diffs += difflib.unified_diff(
            current.splitlines(keepends=True),
            content.splitlines(keepends=True),
            fromfile=f"{OUTPUT / name} (committed)",
            tofile=f"{OUTPUT / name} (from the code)",
        )
    return "".join(diffs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.inventory", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when a committed file is stale",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=ROOT / OUTPUT,
        help=f"the folder of the generated files (default: {OUTPUT})",
    )
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        diff = drift(files, args.dir)
        if diff:
            sys.stdout.write(diff)
            print("inventory: stale; run `make inventory` and commit the result", file=sys.stderr)
            return 1
        print(f"inventory: {', '.join(files)} are current")
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (args.dir / name).write_text(content, encoding="utf-8")
    print(f"inventory: wrote {', '.join(str(args.dir / n) for n in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
