"""CPU time of this process and its children: what a training budget that does not depend on how busy the
machine is counts (``train --cpu-minutes``, ``train-transitions --cpu-minutes``)."""

from __future__ import annotations

import os
import resource


def _live_children_cpu_s() -> float:
    """CPU seconds of this process's children that have not exited yet (0 where ``/proc`` is absent)."""
    me, total = os.getpid(), 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # the command name (field 2) may hold spaces: split after its closing parenthesis
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def process_cpu_seconds(live_children: bool = False) -> float:
    """User + system CPU seconds of this process (all threads) and its reaped children (data-loader workers
    once they exit), plus its live children's if asked."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return total + (_live_children_cpu_s() if live_children else 0.0)
