"""One role of ``crm-gateway serve`` as its own process (``serve --only ROLE``) on a test
database: started when ``start_role`` returns, killed (a crash) or stopped (SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from peers import TEST_SECRET_KEY

START_SECONDS = 30


@dataclass
class RoleProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown code runs."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_role(role: str, database_url: str, workdir: Path, started: str,
               env: dict[str, str]) -> RoleProcess:
    """``serve --only role`` with ``env`` (the test key and data folder set), once its log
    holds ``started``."""
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    child_env.update({
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_PATHS_DATA_DIR": str(workdir / "var"),
        "CRM_GATEWAY_SECURITY_SECRET_KEY": TEST_SECRET_KEY,
        **env,
    })
    log_path = workdir / f"{role}-{uuid.uuid4().hex[:6]}.log"
    script = Path(sys.executable).parent / "crm-gateway"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve", "--only", role], env=child_env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=workdir)
    running = RoleProcess(process, log_path)
    deadline = time.monotonic() + START_SECONDS
    while started not in running.log():
        if process.poll() is not None or time.monotonic() > deadline:
            running.kill()
            raise AssertionError(f"serve --only {role} did not start:\n{running.log()}")
        time.sleep(0.05)
    return running
