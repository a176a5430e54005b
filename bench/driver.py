"""One sync run in its own process, so its peak RSS is its own: ``python bench/driver.py --out F ...``.

Runs the real ``sync`` flow (Prefect, its temporary API, the store, both publishers) and writes one
JSON document to ``--out``: the flow's report, the Knack fetch as the client saw it (start of the first
page request to the end of the last page response, from a timing wrapper around the client's request
method: Prefect's start-up is not in it), and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class GcClock:
    """Seconds spent in the cyclic garbage collector, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.count[info["generation"]] += 1

    def summary(self) -> dict[str, Any]:
        return {"seconds": [round(s, 2) for s in self.seconds], "collections": self.count}


class FetchClock:
    """(start, end) of every Knack record-page request the client makes (metadata excluded)."""

    def __init__(self, page_barrier: Path | None = None) -> None:
        self.spans: list[tuple[float, float]] = []
        self.metadata = 0
        self._lock = threading.Lock()
        self._page_barrier = page_barrier  # concurrent runs: page 1 waits here until every run reaches it
        self._barrier_lock = threading.Lock()
        self.page_ready_at: float | None = None

    def _wait_for_every_page_one(self) -> None:
        """Hold this run's first page request until every run of the phase has reached its own (their
        start-up differs by seconds on a loaded machine): T* assumes the runs' page 1s go together."""
        import os

        with self._barrier_lock:
            if self._page_barrier is None or self.page_ready_at is not None:
                return
            self.page_ready_at = time.monotonic()
            (self._page_barrier / f"{os.getpid()}.page").write_text("")
            while not (self._page_barrier / "page-go").exists():
                time.sleep(0.002)

    def install(self) -> None:
        from tasks.knack.client import KnackClient

        original = KnackClient._get
        clock = self

        def timed(client: Any, route: str, *args: Any, **kwargs: Any) -> Any:
            if not route.startswith("/applications/"):
                clock._wait_for_every_page_one()
            start = time.monotonic()
            try:
                return original(client, route, *args, **kwargs)
            finally:
                end = time.monotonic()
                with clock._lock:
                    if route.startswith("/applications/"):
                        clock.metadata += 1
                    else:
                        clock.spans.append((start, end))

        KnackClient._get = timed  # type: ignore[method-assign]

    def summary(self) -> dict[str, Any]:
        if not self.spans:
            return {"pages": 0, "seconds": 0.0, "metadata_requests": self.metadata}
        first = min(s for s, _ in self.spans)
        last = max(e for _, e in self.spans)
        return {"pages": len(self.spans), "seconds": round(last - first, 3), "metadata_requests": self.metadata,
                "page_one_ready_at": self.page_ready_at,
                "first_page_seconds": round(min(self.spans)[1] - first, 3),
                # CLOCK_MONOTONIC is one clock for every process: concurrent runs are put on one time line
                "first_start": first, "last_end": last}


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries the forking parent's
    high-water mark across ``exec`` into it, so a big parent would show up as the sync's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--app", default="demo")
    p.add_argument("--container", default="object_1")
    p.add_argument("--env", default="dev")
    p.add_argument("--config", required=True)
    p.add_argument("--full", action="store_true")
    p.add_argument("--store-only", action="store_true", help="publish nowhere (the flow's destinations=[])")
    p.add_argument("--barrier", help="once Prefect is up, write <pid>.ready here and start the sync when a file "
                   "'go' appears (runs started together, whatever their start-up took)")
    p.add_argument("--page-barrier", action="store_true", help="with --barrier: also hold the first page "
                   "request until every run has reached its own; the orchestrator writes 'page-go'")
    args = p.parse_args(argv)

    clock = FetchClock(Path(args.barrier) if args.barrier and args.page_barrier else None)
    clock.install()
    gc_clock = GcClock()
    gc.callbacks.append(gc_clock)
    from flows.sync import sync

    result: dict[str, Any] = {}
    started = time.monotonic()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # starts the temporary API now, outside the flow's time
        client.api_healthcheck()
    result["prefect_startup_seconds"] = round(time.monotonic() - started, 3)
    if args.barrier:
        import os

        barrier = Path(args.barrier)
        (barrier / f"{os.getpid()}.ready").write_text("")
        while not (barrier / "go").exists():
            time.sleep(0.005)
    started = time.monotonic()
    try:
        state = sync(app=args.app, container=args.container, env=args.env, full=args.full,
                     config_path=args.config, destinations=[] if args.store_only else None, return_state=True)
        result["report"] = state.result() if state.is_completed() else None
        if not state.is_completed():
            result["error"] = state.message
    except Exception as exc:  # reported, never hidden: the bench marks the phase failed
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["flow_wall_seconds"] = round(time.monotonic() - started, 3)
    result["fetch"] = clock.summary()
    from tasks.knack.ratelimit import limiter_stats

    result["limiter"] = limiter_stats()  # Prefect API calls the rate limit made (empty without a server)
    result["gc"] = gc_clock.summary()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["maxrss_mb"] = peak_rss_mb()
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
