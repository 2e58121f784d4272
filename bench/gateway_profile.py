"""Run ``crm-gateway`` with every thread under cProfile; for diagnosing the benchmark only.

    BENCH_GATEWAY_PROFILE=/tmp/gw.pstats python -m bench.gateway_profile serve --only http

bench/gateway_target.py starts the server this way when ``BENCH_GATEWAY_PROFILE`` is set.  Each
thread (Twisted's request threads included) gets its own ``cProfile.Profile`` on its first
profiled call; at exit the per-thread stats are merged and written to the file named by the
variable, for ``python -m pstats`` or ``snakeviz``.  Numbers measured this way are inflated by
the profiler and are never reported.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import threading
from types import FrameType
from typing import Any

from bench.gateway_target import PROFILE_ENV

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_thread_profile(frame: FrameType, event: str, arg: Any) -> None:
    """The hook threading installs in each new thread: replace it by a cProfile of its own."""
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()  # takes over this thread's profile hook from here on


def main() -> int:
    from gateway.cli import main as gateway_main

    output = os.environ[PROFILE_ENV]
    threading.setprofile(_start_thread_profile)
    main_profile = cProfile.Profile()
    main_profile.enable()
    try:
        return gateway_main(sys.argv[1:])
    finally:
        main_profile.disable()
        threading.setprofile(None)
        with _lock:
            profiles = list(_profiles)
        stats = pstats.Stats(main_profile)
        for profile in profiles:
            profile.create_stats()
            stats.add(profile)
        stats.dump_stats(output)
        print(f"profile of {len(profiles) + 1} threads written to {output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
