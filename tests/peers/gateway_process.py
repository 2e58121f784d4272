"""``crm-gateway serve --only ROLE`` as a real child process, for tests that kill it.

The child runs on Twisted's asyncio reactor exactly as in production; its log goes to a file
the test can read, and the port it bound is read from the SMTP role's start-up line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 30.0
_LISTENING = re.compile(r"BCC listener on [^ ]+:(\d+) ")


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown code runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@contextmanager
def serve(config_path: Path, log_path: Path, role: str = "smtp") -> Iterator[GatewayProcess]:
    """Start ``crm-gateway serve --only role`` with ``config_path``; killed on exit."""
    # The child reads only its file: CRM_GATEWAY_* settings of the test run stay out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env["CRM_GATEWAY_CONFIG"] = str(config_path)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli import main; raise SystemExit(main())",
             "serve", "--only", role],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    child = GatewayProcess(process, log_path)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not child.port:
            found = _LISTENING.search(child.log())
            if found:
                child.port = int(found.group(1))
            elif process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"crm-gateway serve did not start:\n{child.log()}")
            else:
                time.sleep(0.05)
        yield child
    finally:
        child.kill()
