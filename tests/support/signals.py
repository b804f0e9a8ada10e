"""Test support for signal tests: a child process gets SIGINT as a terminal's foreground job would.

A background job of a non-interactive shell (``make test &`` in a CI script, ``setsid ... &``)
starts with SIGINT ignored, and a child inherits that disposition; a Python child then never
sees the Ctrl-C a test sends it. Pass :func:`sigint_as_at_a_terminal` as ``preexec_fn``.
"""

from __future__ import annotations

import signal


def sigint_as_at_a_terminal() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: SIGINT at its default disposition in the child
    (Python then installs its KeyboardInterrupt handler), whatever this process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
