"""CPU time, memory, open files and threads of a process, read from ``/proc`` (Linux; no extra dependency)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    """User plus system CPU time of every thread so far."""
    rss_mb: float
    peak_rss_mb: float
    """VmHWM: the peak resident set since start, or since :func:`reset_peak`."""
    fds: int
    """Open file descriptors (sockets included): the entries of ``/proc/PID/fd``."""
    threads: int


def usage(pid: int) -> Usage:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)

    def mb(key: str) -> float:
        return round(int(status[key].split()[0]) / 1024, 1)

    return Usage(cpu, mb("VmRSS"), mb("VmHWM"), len(os.listdir(f"/proc/{pid}/fd")), int(status["Threads"]))


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (``clear_refs`` 5); False where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
