"""Processes by pid, read from Linux's /proc: children, liveness, waiting for exit."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is parenthesised and may itself contain spaces or parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    found = _state_and_parent(pid)
    return found is not None and found[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid`."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _state_and_parent(int(entry))
            if info is not None and info[1] == pid:
                found.append(int(entry))
    return found


def _reap_if_ours(pid: int) -> None:
    # Orphans are re-parented to pid 1; when the test run *is* pid 1 (a bare container) they
    # become our children, and nothing else would reap them.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of `pids` runs; return those still running when `timeout` expires."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        for pid in remaining:
            _reap_if_ours(pid)
        remaining = [pid for pid in remaining if is_running(pid)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.01)
