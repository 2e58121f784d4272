"""What both benchmark targets do with their server subprocess: wait for it, read its log."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_until_up(process: subprocess.Popen[bytes], answers: Callable[[], bool], what: str,
                  log_path: Path, timeout: float) -> None:
    """Poll ``answers()`` until it says yes; fail with the log's tail if the server exits or
    does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log_tail(log_path)}")
        try:
            if answers():
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f} s: "
                               f"{log_tail(log_path)}")
        time.sleep(0.1)
