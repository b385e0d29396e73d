"""CPU and memory of the processes that share the machine with the worker (the embedded
broker, the load generators), so a report can say whether the worker or its neighbours
held a run back. Read with psutil; a process that has exited keeps its last figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil


@dataclass
class ProcessGroup:
    """Processes counted together (e.g. every load-generator process)."""

    pids: list[int]
    _last: dict[int, tuple[float, int]] = field(default_factory=dict)  # pid -> cpu s, rss

    def sample(self) -> tuple[float, int]:
        """(CPU seconds used so far, resident bytes now), summed over the group."""
        for pid in self.pids:
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss if process.is_running() else 0
                self._last[pid] = (times.user + times.system, rss)
            except psutil.Error:  # gone: its CPU time stays counted, its memory is freed
                cpu, _ = self._last.get(pid, (0.0, 0))
                self._last[pid] = (cpu, 0)
        return (
            sum(cpu for cpu, _ in self._last.values()),
            sum(rss for _, rss in self._last.values()),
        )
