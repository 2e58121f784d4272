"""A connectivity test's result as named steps (``mail test``, ``calendars test``).

Each edge runs its own protocol's steps (IMAP, CalDAV) and records them here; the CLI, the
API and the pages show them the same way: every step with ok / failed / skipped and why,
the first failure ending the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # OK | FAILED | SKIPPED
    detail: str


@dataclass
class StepResult:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((step for step in self.steps if step.status == FAILED), None)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def add(self, name: str, status: str, detail: str) -> None:
        self.steps.append(Step(name, status, detail))
