"""CPU time and memory of processes from /proc (Linux): utime + stime, and the resident set."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat_times(stat: str) -> tuple[float, float]:
    """(utime, stime) in seconds from the text of ``/proc/<pid>/stat`` (fields 14 and 15; the
    command name in field 2 may hold spaces and parentheses, so count after its last ``)``)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def parse_stat_cpu(stat: str) -> float:
    """utime + stime in seconds from the text of ``/proc/<pid>/stat``."""
    return sum(parse_stat_times(stat))


def cpu_times(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds a live process has used so far, or None once it is gone."""
    try:
        return parse_stat_times(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system) a live process has used so far, or None once it is gone."""
    times = cpu_times(pid)
    return None if times is None else sum(times)


def rss_mb(pid: int) -> float | None:
    """Resident set size in MiB (``VmRSS``), or None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def snapshot(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each live process among ``pids``."""
    taken = {pid: cpu_seconds(pid) for pid in pids}
    return {pid: cpu for pid, cpu in taken.items() if cpu is not None}


def used_between(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    """CPU seconds each process used between two snapshots; a process that appeared in between
    counts from zero (it started inside the window), one that vanished is lost (not counted)."""
    return {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}


def find_pids(needle: str) -> list[int]:
    """Processes whose command line contains ``needle`` (e.g. ``kafka.Kafka``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (by the parent id in each ``/proc/<pid>/stat``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found
