"""CalDAV benchmark: the same calendar and request set against each server under test.

    .venv/bin/python -m bench.caldav [--sizes 1000,10000] [--targets stock,gateway] [--repeat 7]
    .venv/bin/python -m bench.caldav --sizes 1000,10000,100000
    .venv/bin/python -m bench.caldav --targets gateway --gateway-db \
        postgresql+psycopg://postgres@127.0.0.1:5432/test

For each size, one deterministic calendar (bench/calgen.py) is loaded into every target
(bench/targets.py), each request is run once untimed (warming caches, checking the answer),
then timed over real HTTP with a keep-alive ``requests.Session``; the median is reported.  The
repetition count adapts: at most ``--repeat``, at least 3, and otherwise as many as fit in
``--budget`` seconds per request type given the untimed run's duration, so that slow cases
(stock Radicale at 100k events) stay within minutes.  The week and month queries and the
multiget must return the same hrefs on every target, else the run fails (exit status 1).

The calendar has a constant density of events per week at every size (bench/calgen.py), so a
week query returns about the same items at 1k and at 100k events.  Stock Radicale runs only up
to ``--stock-max-size`` (10,000: loading 100k events into it takes many minutes); above that the
other targets run alone and are compared with their own numbers at ``SCALING_BASE`` (1,000)
events from the same run (added automatically when ``--sizes`` lacks it): the "scaling" table
gives the cost ratio larger/1k per request.  Finally the issue's targets are checked (stock/other
ratios at 10k, scaling of the week query and the incremental sync at 100k) and listed as met or
missed.

Progress goes to stderr, the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import calgen
from bench.calgen import CalEvent
from bench.gateway_target import GatewayTarget
from bench.requests_caldav import CalDAVClient, CalDAVError, Multistatus, parse_multistatus
from bench.targets import TARGETS, Target

GETETAG = "{DAV:}getetag"
CALENDAR_DATA = "{urn:ietf:params:xml:ns:caldav}calendar-data"
MULTIGET_SIZE = 50
MIN_RUNS = 3

# (key, row label); the row order of the report.
ROWS: tuple[tuple[str, str], ...] = (
    ("propfind1", "PROPFIND Depth:1 getetag"),
    ("week", "calendar-query, 1 week"),
    ("month", "calendar-query, 1 month"),
    ("sync", "sync-collection after 1 change"),
    ("multiget", f"calendar-multiget, {MULTIGET_SIZE} hrefs"),
    ("ctag", "PROPFIND Depth:0 getctag"),
    ("put", "PUT creating a new event"),
    ("concurrent", "{clients} clients, 1-week query, requests/s"),
)
COMPARED = ("week", "month", "multiget")  # href sets that must agree across targets
SCALING_BASE = 1000  # the size larger runs of a target are compared with
STOCK_MAX_SIZE = 10000  # default --stock-max-size
# The targets: minimum stock/other ratio at TARGET_SIZE events ...
TARGET_SIZE = 10000
MIN_SPEEDUP: dict[str, float] = {"week": 20, "month": 20, "sync": 20, "ctag": 20, "put": 20,
                                 "propfind1": 1.5, "concurrent": 50}
# ... and the maximum cost ratio (100k / SCALING_BASE) at SCALING_SIZE events.
SCALING_SIZE = 100000
MAX_SCALING: dict[str, float] = {"week": 2, "sync": 2}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Measurement:
    unit: str  # "ms" (median latency) or "req/s" (throughput)
    value: float
    samples: list[float]  # ms per run; for req/s the per-request latencies under load


@dataclass
class TargetRun:
    target: str
    size: int
    measurements: dict[str, Measurement] = field(default_factory=dict)
    hrefs: dict[str, list[str]] = field(default_factory=dict)  # sorted names, for COMPARED
    info: dict[str, float] = field(default_factory=dict)  # untimed costs, seconds


@dataclass
class Options:
    repeat: int
    budget: float  # seconds of timed runs per request type, for the repetition count
    clients: int
    duration: float  # seconds the concurrent clients keep starting requests
    seed: int


class BenchError(RuntimeError):
    """A target answered wrongly: the numbers would be meaningless."""




def _runs(options: Options, warm_ms: float) -> int:
    fit = int(options.budget * 1000.0 / max(warm_ms, 0.001))
    return max(min(MIN_RUNS, options.repeat), min(options.repeat, fit))


def _names(multistatus: Multistatus, url: str, *, ok_only: bool = True) -> set[str]:
    return {r.name for r in multistatus.members(url) if not ok_only or r.status == 200}


class Runner:
    """All requests against one started target."""

    def __init__(self, target: Target, url: str, events: Sequence[CalEvent], options: Options,
                 run: TargetRun) -> None:
        self.target = target
        self.url = url
        self.events = events
        self.options = options
        self.run = run
        self.client = CalDAVClient(url, target.credentials)
        self.etags: dict[str, str] = {}
        self.uids = {e.href: e.uid for e in events}
        pick = random.Random(f"multiget-{options.seed}-{len(events)}")
        self.multiget_names = sorted(e.href for e in pick.sample(list(events), MULTIGET_SIZE))

    # -- the requests; each returns what the checks and the comparison need ------------------

    def propfind1(self) -> Multistatus:
        answer = self.client.propfind("1", "D:getetag")
        members = answer.members(self.url)
        if len(members) != len(self.events):
            raise BenchError(f"{self.target.name}: Depth:1 PROPFIND lists {len(members)} "
                             f"resources, {len(self.events)} were loaded")
        return answer

    def query(self, window: tuple[datetime, datetime]) -> set[str]:
        answer = self.client.calendar_query(*window)
        names = _names(answer, self.url)
        if not names:
            raise BenchError(f"{self.target.name}: empty calendar-query answer for {window}")
        return names

    def multiget(self) -> set[str]:
        answer = self.client.multiget(self.multiget_names)
        for response in answer.responses:
            data = response.props.get(CALENDAR_DATA, "")
            if response.status == 200 and f"UID:{self.uids.get(response.name)}" not in data:
                raise BenchError(f"{self.target.name}: multiget returned no calendar-data with "
                                 f"the UID for {response.href}")
        return _names(answer, self.url)

    def ctag(self) -> str:
        answer = self.client.propfind("0", "CS:getctag")
        ctag = answer.responses[0].props.get("{http://calendarserver.org/ns/}getctag", "")
        if not ctag:
            raise BenchError(f"{self.target.name}: no getctag")
        return ctag

    # -- measurement helpers ------------------------------------------------------------------

    def repeated(self, key: str, call: Callable[[], object]) -> object:
        """Run ``call`` (one request of ``self.client``) once untimed, then the adaptive number
        of times timed; a sample is the HTTP exchange alone (``CalDAVClient.last_ms``)."""
        first = call()
        runs = _runs(self.options, self.client.last_ms)
        samples: list[float] = []
        for _ in range(runs):
            call()
            samples.append(self.client.last_ms)
        self.record(key, samples)
        return first

    def record(self, key: str, samples: list[float]) -> None:
        median = statistics.median(samples)
        self.run.measurements[key] = Measurement("ms", median, samples)
        log(f"  {self.target.name} {key}: median {median:.1f} ms over {len(samples)} runs")

    # -- the benchmark ------------------------------------------------------------------------

    def all(self) -> None:
        answer = self.propfind1()
        cold_ms = self.client.last_ms
        self.run.info["first Depth:1 PROPFIND (cold caches)"] = cold_ms / 1000.0
        assert isinstance(answer, Multistatus)
        self.etags = {r.name: r.props.get(GETETAG, "") for r in answer.members(self.url)}
        log(f"  {self.target.name}: first Depth:1 PROPFIND {cold_ms / 1000:.1f} s (cold)")

        self.repeated("propfind1", self.propfind1)
        week = self.repeated("week", lambda: self.query(calgen.WEEK))
        month = self.repeated("month", lambda: self.query(calgen.MONTH))
        multiget = self.repeated("multiget", self.multiget)
        self.repeated("ctag", self.ctag)
        assert isinstance(week, set) and isinstance(month, set) and isinstance(multiget, set)
        if not week <= month:
            raise BenchError(f"{self.target.name}: {len(week - month)} hrefs of the week query "
                             "are missing from the month query that contains the week")
        if multiget != set(self.multiget_names):
            raise BenchError(f"{self.target.name}: multiget returned {len(multiget)} of the "
                             f"{MULTIGET_SIZE} requested hrefs")
        self.run.hrefs = {"week": sorted(week), "month": sorted(month),
                          "multiget": sorted(multiget)}
        self.concurrent(week)
        self.sync()
        self.put()

    def concurrent(self, expected: set[str]) -> None:
        """``clients`` threads, each with its own Session, run the week query: requests/s."""
        clients = [CalDAVClient(self.url, self.target.credentials)
                   for _ in range(self.options.clients)]
        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(clients) + 1)
        deadline = 0.0

        def work(client: CalDAVClient) -> None:
            barrier.wait()
            verified: set[bytes] = set()  # answers checked already (parsed only when new)
            done = 0
            try:
                while done == 0 or time.perf_counter() < deadline:
                    body = client.calendar_query_unparsed(*calgen.WEEK)
                    done += 1
                    with lock:
                        latencies.append(client.last_ms)
                    if body not in verified:
                        if _names(parse_multistatus(body), self.url) != expected:
                            raise BenchError(f"{self.target.name}: a concurrent week query "
                                             "returned other hrefs")
                        verified.add(body)
            except BaseException as exc:  # reported by the main thread
                with lock:
                    errors.append(exc)
            finally:
                client.close()

        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        deadline = start + self.options.duration
        barrier.wait()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        rps = len(latencies) / elapsed
        self.run.measurements["concurrent"] = Measurement("req/s", rps, latencies)
        log(f"  {self.target.name} concurrent: {len(latencies)} requests in {elapsed:.1f} s "
            f"= {rps:.2f} req/s (median latency {statistics.median(latencies):.0f} ms)")

    def sync(self) -> None:
        """Timed: sync-collection from the previous token after one event was modified."""
        token = self.client.propfind("0", "D:sync-token").responses[0].props.get(
            "{DAV:}sync-token", "")
        if not token:
            raise BenchError(f"{self.target.name}: no sync-token")
        editable = calgen.editable_events(list(self.events), 4)
        samples: list[float] = []
        runs = 0
        revision = 0
        while len(samples) < runs or revision == 0:
            revision += 1
            event = calgen.modified_event(editable[revision % len(editable)], revision)
            self.etags[event.href] = self.client.put(event.href, event.text,
                                                     etag=self.etags[event.href])
            answer = self.client.sync_collection(token)
            ms = self.client.last_ms
            changed = _names(answer, self.url, ok_only=False)
            if changed != {event.href} or not answer.sync_token:
                raise BenchError(f"{self.target.name}: sync after modifying {event.href} "
                                 f"reported {sorted(changed)[:5]} (token {answer.sync_token!r})")
            token = answer.sync_token
            if revision == 1:  # the untimed warm-up cycle
                runs = _runs(self.options, ms)
            else:
                samples.append(ms)
        self.record("sync", samples)

    def put(self) -> None:
        """Timed: PUT (If-None-Match: *) of a new event."""
        fresh = calgen.new_events(self.options.seed, self.options.repeat + 1)
        warm = next(fresh)
        self.client.put(warm.href, warm.text)
        runs = _runs(self.options, self.client.last_ms)
        samples: list[float] = []
        for event in fresh:
            if len(samples) == runs:
                break
            self.client.put(event.href, event.text)
            samples.append(self.client.last_ms)
        self.record("put", samples)


def run_target(name: str, events: Sequence[CalEvent], options: Options) -> TargetRun:
    run = TargetRun(target=name, size=len(events))
    with tempfile.TemporaryDirectory(prefix=f"bench-caldav-{name}-") as scratch:
        target = TARGETS[name](Path(scratch))
        try:
            start_s = time.perf_counter()
            url = target.start(events)
            run.info["load and start"] = time.perf_counter() - start_s
            log(f"  {name}: serving {len(events)} events at {url} "
                f"(load and start {run.info['load and start']:.1f} s)")
            runner = Runner(target, url, events, options, run)
            try:
                runner.all()
            finally:
                runner.client.close()
        finally:
            target.stop()
    return run


def compare(size: int, runs: list[TargetRun]) -> list[str]:
    """Mismatch descriptions for the href sets that must agree across targets."""
    problems: list[str] = []
    reference = runs[0]
    for other in runs[1:]:
        for key in COMPARED:
            ours, theirs = set(reference.hrefs[key]), set(other.hrefs[key])
            if ours != theirs:
                only_ref = sorted(ours - theirs)
                only_other = sorted(theirs - ours)
                problems.append(
                    f"{size} events, {key}: {reference.target} {len(ours)} hrefs, "
                    f"{other.target} {len(theirs)}; only in {reference.target} "
                    f"({len(only_ref)}): {only_ref[:5]}; only in {other.target} "
                    f"({len(only_other)}): {only_other[:5]}")
    return problems


def _fmt(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def table(size: int, runs: list[TargetRun], clients: int) -> str:
    names = [r.target for r in runs]
    base = runs[0]
    header = ["request", *(f"{n} ms" for n in names)]
    header += [f"ratio {base.target}/{r.target}" for r in runs[1:]]
    lines = [f"### {size:,} events", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for key, label in ROWS:
        label = label.format(clients=clients)
        cells = [label]
        for run in runs:
            m = run.measurements.get(key)
            cells.append(_fmt(m.value, m.unit) if m else "n/a")
        for run in runs[1:]:
            a, b = base.measurements.get(key), run.measurements.get(key)
            if a is None or b is None or not a.value or not b.value:
                cells.append("n/a")
            elif a.unit == "req/s":  # throughput: other/base, so > 1 means the other is faster
                cells.append(f"{b.value / a.value:.1f}x")
            else:
                cells.append(f"{a.value / b.value:.1f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for run in runs:
        counts = ", ".join(f"{k} {len(m.samples)}" for k, m in run.measurements.items()
                           if m.unit == "ms")
        infos = "; ".join(f"{k} {v:.1f} s" for k, v in run.info.items())
        lines.append(f"- {run.target}: median of n runs ({counts}); {infos}")
    if len(runs) > 1:
        lines.append("- ratios > 1 mean the other target is faster (for requests/s the ratio "
                     "is inverted accordingly)")
    return "\n".join(lines) + "\n"


def _cost(m: Measurement) -> float:
    """Per-request cost in ms: the median latency, or 1000/throughput for req/s."""
    return m.value if m.unit == "ms" else 1000.0 / m.value


def scaling_table(base: TargetRun, big: TargetRun, clients: int) -> str:
    """One target at a larger size against itself at SCALING_BASE: cost ratios."""
    b, s = f"{base.size:,}", f"{big.size:,}"
    lines = [f"### {big.target}: {s} events vs {b} (same run)", "",
             f"| request | {b} | {s} | cost ratio {s}/{b} |", "|---|---|---|---|"]
    for key, label in ROWS:
        m_base, m_big = base.measurements.get(key), big.measurements.get(key)
        if m_base is None or m_big is None or not m_base.value or not m_big.value:
            continue
        unit = " req/s" if m_base.unit == "req/s" else " ms"
        lines.append(f"| {label.format(clients=clients)} | {_fmt(m_base.value, m_base.unit)}"
                     f"{unit} | {_fmt(m_big.value, m_big.unit)}{unit} | "
                     f"{_cost(m_big) / _cost(m_base):.2f}x |")
    lines += ["", "- cost ratio: median latency ratio; for requests/s the inverse throughput "
              "ratio (1.0 = no slower at the larger size)"]
    b_info = "; ".join(f"{k} {v:.1f} s" for k, v in base.info.items())
    s_info = "; ".join(f"{k} {v:.1f} s" for k, v in big.info.items())
    lines.append(f"- {b} events: {b_info}")
    lines.append(f"- {s} events: {s_info}")
    return "\n".join(lines) + "\n"


def check_targets(all_runs: list[TargetRun]) -> str:
    """The issue's targets, as a Markdown list of met/missed; "" when no run bears on them."""
    by = {(r.target, r.size): r for r in all_runs}
    lines: list[str] = []
    for (name, size), run in by.items():
        stock = by.get(("stock", size))
        if name == "stock" or size != TARGET_SIZE or stock is None:
            continue
        for key, wanted in MIN_SPEEDUP.items():
            a, b = stock.measurements.get(key), run.measurements.get(key)
            if a is None or b is None or not a.value or not b.value:
                continue
            ratio = b.value / a.value if a.unit == "req/s" else a.value / b.value
            verdict = "met" if ratio >= wanted else "MISSED"
            lines.append(f"- {size:,} events, {key}: stock/{name} {ratio:.1f}x "
                         f"(target >= {wanted:g}x): {verdict}")
    for (name, size), run in by.items():
        base = by.get((name, SCALING_BASE))
        if name == "stock" or size != SCALING_SIZE or base is None:
            continue
        for key, limit in MAX_SCALING.items():
            a, b = base.measurements.get(key), run.measurements.get(key)
            if a is None or b is None:
                continue
            ratio = _cost(b) / _cost(a)
            verdict = "met" if ratio <= limit else "MISSED"
            lines.append(f"- {name} {key}: {size:,}/{SCALING_BASE:,} events cost {ratio:.2f}x "
                         f"(target <= {limit:g}x): {verdict}")
    return "### Targets\n\n" + "\n".join(lines) + "\n" if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000",
                        help="comma-separated event counts (default 1000,10000; sizes above "
                             "--stock-max-size run without stock Radicale, against the other "
                             f"targets' own {SCALING_BASE:,}-event numbers)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated, from: {', '.join(TARGETS)}")
    parser.add_argument("--stock-max-size", type=int, default=STOCK_MAX_SIZE,
                        help="largest size stock Radicale is loaded with (default "
                             f"{STOCK_MAX_SIZE:,}; its cache build at 100k takes many minutes)")
    parser.add_argument("--gateway-db", metavar="URL",
                        help="run the gateway on PostgreSQL: a server URL such as "
                             "postgresql+psycopg://postgres@127.0.0.1:5432/test (a scratch "
                             "database is created there per size); default a SQLite file")
    parser.add_argument("--repeat", type=int, default=7, help="maximum timed runs per request")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed runs per request type before the repetition "
                             f"count drops (not below {MIN_RUNS}); default 10")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds the concurrent clients keep starting requests; each "
                             "client completes at least one (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write all measurements to this file")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.replace("_", "").split(",") if part]
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; registered: "
                     f"{', '.join(TARGETS)} (a new target is added in bench/targets.py: TARGETS)")
    if "stock" in names:  # the reference column comes first
        names.remove("stock")
        names.insert(0, "stock")
    if args.repeat < 1 or args.clients < 1 or not sizes or min(sizes) < MULTIGET_SIZE:
        parser.error(f"--repeat and --clients must be >= 1, sizes >= {MULTIGET_SIZE}")
    options = Options(repeat=args.repeat, budget=args.budget, clients=args.clients,
                      duration=args.duration, seed=args.seed)
    if args.gateway_db:
        gateway_db: str = args.gateway_db
        TARGETS["gateway"] = lambda workdir: GatewayTarget(workdir, gateway_db)

    # (size, targets at that size): stock only up to --stock-max-size; the others also at
    # SCALING_BASE when they run alone at some size, to compare with themselves.
    plan = [(size, [n for n in names if n != "stock" or size <= args.stock_max_size])
            for size in sizes]
    alone = {n for size, here in plan for n in here if size > args.stock_max_size}
    if alone and SCALING_BASE not in sizes:
        plan.insert(0, (SCALING_BASE, [n for n in names if n in alone]))

    all_runs: list[TargetRun] = []
    problems: list[str] = []
    for size, here in plan:
        if not here:
            continue
        log(f"{size} events, seed {args.seed}: generating")
        events = calgen.generate(size, args.seed)
        runs = []
        for name in here:
            log(f"{size} events: target {name}")
            try:
                runs.append(run_target(name, events, options))
            except (BenchError, CalDAVError) as exc:
                print(f"\n!!! {name} at {size} events FAILED: {exc}\n", file=sys.stderr)
                problems.append(f"{size} events, {name}: {exc}")
        if runs:
            problems += compare(size, runs)
            print(table(size, runs, args.clients), flush=True)
        all_runs += runs

    by = {(r.target, r.size): r for r in all_runs}
    for run in all_runs:
        base = by.get((run.target, SCALING_BASE))
        if run.target != "stock" and run.size > args.stock_max_size and base is not None:
            print(scaling_table(base, run, args.clients), flush=True)
    verdicts = check_targets(all_runs)
    if verdicts:
        print(verdicts, flush=True)

    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in all_runs], indent=1),
                             encoding="utf-8")
    if problems:
        print("\n" + "!" * 72, file=sys.stderr)
        print("!!! MISMATCH / FAILURE — the numbers above are not comparable:", file=sys.stderr)
        for problem in problems:
            print(f"!!!   {problem}", file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
