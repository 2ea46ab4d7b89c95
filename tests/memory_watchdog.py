"""Runs a command in a child process and reports its peak memory, killing it above a cap.

The peak comes from the kernel (``os.wait4``'s ``ru_maxrss``: the largest resident
set of the child and of any descendant it waited for), so a short spike between
two samples still counts. A thread samples the resident memory of the child's
whole process tree every few milliseconds and kills the tree once it passes
``cap_bytes``, so a regression fails the test instead of taking the machine down.
"""
import dataclasses
import os
import signal
import subprocess
import threading
from typing import Dict, List, Optional, Sequence

_SAMPLE_SECONDS = 0.005


@dataclasses.dataclass
class WatchedRun:
    returncode: int
    peak_rss_bytes: int  # from the kernel, after the child exited
    killed_over_cap: bool
    stdout: str
    stderr: str


def _children(pid: int) -> List[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as stream:
            return [int(p) for p in stream.read().split()]
    except OSError:
        return []


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += _rss_bytes(current)
        pending += _children(current)
    return total


def run_watched(command: Sequence[str], cap_bytes: int, cwd: Optional[str] = None,
                env: Optional[Dict[str, str]] = None, timeout_s: float = 600) -> WatchedRun:
    """Runs ``command`` to completion (or until it passes ``cap_bytes`` or ``timeout_s``)."""
    out_path = f"/tmp/watched-{os.getpid()}-{threading.get_ident()}"
    with open(out_path + ".out", "w+") as out, open(out_path + ".err", "w+") as err:
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
        killed = threading.Event()
        finished = threading.Event()

        def watch():
            while not finished.wait(_SAMPLE_SECONDS):
                if tree_rss_bytes(process.pid) > cap_bytes:
                    killed.set()
                    os.killpg(process.pid, signal.SIGKILL)
                    return

        def time_limit():
            if not finished.wait(timeout_s):
                os.killpg(process.pid, signal.SIGKILL)

        watchers = [threading.Thread(target=watch, daemon=True),
                    threading.Thread(target=time_limit, daemon=True)]
        for thread in watchers:
            thread.start()
        _, status, usage = os.wait4(process.pid, 0)
        finished.set()
        for thread in watchers:
            thread.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        try:  # whatever the child left behind in its session
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out.seek(0)
        err.seek(0)
        result = WatchedRun(process.returncode, usage.ru_maxrss * 1024, killed.is_set(),
                            out.read(), err.read())
    os.remove(out_path + ".out")
    os.remove(out_path + ".err")
    return result
