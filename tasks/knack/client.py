"""The Knack HTTP client: metadata, concurrent paging under a rate limiter, retries, quota guard.

Plain I/O, no Prefect decorators (``tasks/knack/tasks.py`` calls it). Page 1 tells how many pages
there are; the rest are fetched by a thread pool wide enough to keep the limiter busy (limit × page
latency), each request under the app's limiter, and yielded as they arrive (a page is held only
until the caller takes it). Transient faults (429, 5xx, timeouts, dropped connections) are retried
under ``tasks/retry.py``'s policy; any other 4xx fails at once with Knack's message.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState

from blocks.knack import KnackCredentials
from tasks.clock import epoch_seconds
from tasks.domain.deadlines import RequestDeadlines, default_deadlines
from tasks.domain.errors import KnackError, KnackQuotaError
from tasks.domain.knack import container_route, record_modified_at, resolve_timezone, since_filter
from tasks.domain.listing import Listing, PageReport, changed_during
from tasks.knack.ratelimit import RateLimiter
from tasks.retry import TransientReply, failure_of, full_jitter, hinted, is_transient_status, retrying
from tasks.wire import RequestDeadlineExceeded, guard_session

MAX_ROWS_PER_PAGE = 1000
CLOSING_CHECK_ROWS = 1000  # the most recently modified records a listing of several pages ends by reading
# Pages in flight when ``workers`` is not fixed: enough for limit × page latency (10/s × 2 s pages
# wants ~25), bounded so a slow Knack never gets a thread per page.
MAX_IN_FLIGHT = 32


@dataclass
class KnackStats:
    """What one client spent: for run summaries and the benchmark."""

    requests: int = 0
    pages: int = 0
    records: int = 0
    retries: int = 0
    quota_remaining: int | None = None
    expected_records: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _knack_message(response: requests.Response) -> str:
    """Knack's own error text (``{"errors": [{"message": ...}]}`` or plain text), kept short."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)[:500]
    except ValueError:
        pass
    return (response.text or response.reason or "").strip()[:500] or f"HTTP {response.status_code}"


_REFUSAL_HINTS = {  # what to check when Knack refuses: the credentials come from knack-<app>-<env>
    401: "; check the API key (block knack-<app>-<env>, or KNACK_API_KEY)",
    403: "; the view needs a logged-in user: publish a view that is open to the API",
    404: "; check the app id (block knack-<app>-<env>, or KNACK_APP_ID) and the container in the config",
}


class KnackClient:
    """Requests to one Knack app on behalf of ``app_name``; the API key never leaves ``creds``."""

    def __init__(self, creds: KnackCredentials, app_name: str, *, limiter: RateLimiter, timeout: float = 30,
                 max_attempts: int = 8, workers: int | None = None, quota_floor: int = 0, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, min_rate_limit_wait: float = 1.0,
                 clock: Callable[[], float] = epoch_seconds, deadlines: RequestDeadlines | None = None) -> None:
        self._creds = creds
        self.app_name = app_name
        self.limiter = limiter
        self.timeout, self.max_attempts = timeout, max(1, max_attempts)
        self.workers = max(1, workers) if workers else None  # None: sized from the limit and latency
        self.quota_floor = quota_floor
        self._backoff = hinted(self._rate_limit_wait, full_jitter(backoff_initial, backoff_max))
        self._min_429_wait, self._clock = min_rate_limit_wait, clock
        self.stats = KnackStats()
        self.last_listing: Listing | None = None  # what the pages of the latest fetch reported
        self._server_time: datetime | None = None  # the Date header of the latest response (Knack's clock)
        self._lock = threading.Lock()
        self._next_slot = 0.0  # monotonic time before which this client sends nothing more (pacing)
        self.api_url = creds.api_url.rstrip("/")
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.workers or MAX_IN_FLIGHT)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # each request whole within its deadline (request_deadline_seconds), however slowly Knack answers
        guard_session(self.session, deadlines or default_deadlines(), f"Knack app {app_name}")

    def __repr__(self) -> str:
        return f"KnackClient(app={self.app_name!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> KnackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public API ---------------------------------------------------------------------------------

    def get_metadata(self) -> dict[str, Any]:
        """The whole metadata body, ``{"application": {...}}`` (the route needs no key)."""
        return self._get(f"/applications/{self._creds.app_id}", {}, None, auth=False)

    def check_quota(self, pages_needed: int, container: str | None = None) -> None:
        """Refuse a fetch that would take the daily quota below ``quota_floor`` (when it is known)."""
        remaining = self.stats.quota_remaining
        if remaining is not None and remaining - pages_needed < self.quota_floor:
            raise KnackQuotaError(f"fetching needs about {pages_needed} requests but only {remaining} of the "
                                  f"daily Knack quota remain and the configured floor is {self.quota_floor}",
                                  app=self.app_name, container=container)

    def get_record(self, container_key: str, record_id: str, scene_id: str | None = None) -> dict[str, Any] | None:
        """One record as its container serves it, or None when Knack answers 404 (no such record there)."""
        route = f"{container_route(container_key, scene_id)}/{record_id}"
        try:
            return self._get(route, {}, container_key)
        except KnackError as exc:
            if exc.status == 404:
                return None
            raise

    def iter_pages(self, container_key: str, scene_id: str | None = None, filters: dict | list | None = None,
                   rows_per_page: int = MAX_ROWS_PER_PAGE, modified_field: str | None = None,
                   tz: tzinfo | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every record of an object or view, one page at a time (completion order), each id once.

        Page 1 tells ``total_pages``; pages 2..total_pages are then fetched concurrently and nothing
        past them is asked for: a fetch costs exactly the pages it needs. ``total_records`` is only an
        estimate (Knack overstates it; pages past the real end come back empty, and short pages do
        not mean the end), so no count is asserted. A record created while the fetch runs and pushed
        past the last page is caught by the next incremental run: the cursor trails the fetch start.
        With ``modified_field`` (and the app's ``tz``), a listing of several pages ends with a closing check,
        one request for the most recently modified record: one stamped after the fetch began means a record
        was created or edited during it, and a delete with a create keeps every count right while shifting
        a record past a page boundary unseen, so the listing is reported as not whole (``Listing``).
        """
        route = container_route(container_key, scene_id)
        rows = max(1, min(int(rows_per_page), MAX_ROWS_PER_PAGE))
        base: dict[str, int | str] = {"rows_per_page": rows}
        if filters:
            base["filters"] = json.dumps(filters, separators=(",", ":"))
        seen: set[str] = set()
        abandon = threading.Event()  # set when the caller stops early or a page fails for good
        listing = self.last_listing = Listing(rows)

        def fetch(page: int) -> dict[str, Any]:
            body = self._get(route, {**base, "page": page}, container_key, abandon=abandon)
            report = PageReport(page, len(body.get("records") or []), int(body.get("total_records") or 0),
                                int(body.get("total_pages") or 0))
            with self._lock:
                listing.pages.append(report)
            return body

        self.check_quota(1, container_key)
        clock = time.monotonic()
        first = fetch(1)
        elapsed = time.monotonic() - clock
        # Knack's own clock when the fetch began: page 1's Date, less the time page 1 took
        listing.knack_time = self._server_time - timedelta(seconds=elapsed) if self._server_time else None
        width = self._width(elapsed)
        total_pages = int(first.get("total_pages") or 0)
        self.stats.expected_records = int(first.get("total_records") or 0)  # an estimate, for progress
        if total_pages > 1:  # before page 1 is handed on: a refused fetch writes nothing
            self.check_quota(total_pages - 1, container_key)
        if total_pages > 1:  # pages 2.. are on their way before page 1 is handed on
            yield from self._concurrent(fetch, range(2, total_pages + 1), seen, abandon, width, first)
            if modified_field and tz is not None:
                listing.stamped_during, listing.stamped_more = self._stamped_since(
                    route, container_key, modified_field, tz, listing.knack_time)
        else:  # one page is one answer: nothing can move under it
            yield from self._fresh(first, seen)
        listing.distinct = len(seen)
        listing.complete = True

    def _stamped_since(self, route: str, container_key: str, modified_field: str, tz: tzinfo,
                       began: datetime | None) -> tuple[list[str], bool]:
        """The closing check: one request for the ``CLOSING_CHECK_ROWS`` most recently modified records;
        (the ids of those stamped since ``began``, whether every one of them was: more may be)."""
        if began is None:  # no clock to judge by: every record of the check counts
            began = datetime.min.replace(tzinfo=UTC)
        self.check_quota(1, container_key)
        body = self._get(route, {"rows_per_page": CLOSING_CHECK_ROWS, "page": 1, "sort_field": modified_field,
                                 "sort_order": "desc"}, container_key)
        records = body.get("records") or []
        stamped = [str(r.get("id")) for r in records if changed_during(record_modified_at(r, modified_field, tz), began)]
        return stamped, bool(records) and len(stamped) == len(records) == CLOSING_CHECK_ROWS

    def iter_records(self, container_key: str, since: datetime | None = None, modified_field: str | None = None,
                     tz: tzinfo | str | None = None, *, scene_id: str | None = None,
                     rows_per_page: int = MAX_ROWS_PER_PAGE) -> Iterator[list[dict[str, Any]]]:
        """Pages of records modified at or after ``since`` (all records when ``since`` is None).

        Knack filters by whole local days, so the request asks for ``since``'s day onwards and the
        precise instant of ``modified_field`` decides what is kept.
        """
        zone = resolve_timezone(tz) if isinstance(tz, str) else tz
        if since is None:
            yield from self.iter_pages(container_key, scene_id, None, rows_per_page, modified_field, zone)
            return
        if not modified_field or zone is None:
            raise KnackError("an incremental fetch needs the modified date field and the app timezone",
                             app=self.app_name, container=container_key)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        for page in self.iter_pages(container_key, scene_id, since_filter(modified_field, since, zone),
                                    rows_per_page, modified_field, zone):
            kept = [r for r in page if (at := record_modified_at(r, modified_field, zone)) is not None
                    and at >= since]
            if kept:
                yield kept

    # --- paging internals ---------------------------------------------------------------------------

    def _width(self, first_page_seconds: float) -> int:
        """Pages in flight: ``workers`` when fixed; else enough to keep the rate limit busy while each
        page takes as long as page 1 did (limit × latency, with a margin), within ``MAX_IN_FLIGHT``.
        Fewer would leave the limit idle: 8 in flight at 2 s a page is 4 pages/s of the 10 allowed."""
        if self.workers is not None:
            return self.workers
        rate = float(getattr(self.limiter, "per_second", 0) or 10)
        return max(4, min(MAX_IN_FLIGHT, math.ceil(rate * first_page_seconds * 1.25) + 2))

    def _fresh(self, body: dict[str, Any], seen: set[str]) -> Iterator[list[dict[str, Any]]]:
        records = body.get("records") or []
        fresh = []
        for record in records:
            rid = record.get("id")
            if rid not in seen:
                seen.add(rid)
                fresh.append(record)
        with self._lock:
            self.stats.pages += 1
            self.stats.records += len(fresh)
        if fresh:
            yield fresh

    def _concurrent(self, fetch: Callable[[int], dict[str, Any]], pages: range, seen: set[str],
                    abandon: threading.Event, width: int, first: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Fetch ``pages`` with at most ``width`` in flight, yielding each as it completes.

        ``first`` (page 1's body) is yielded once the first requests are submitted: the consumer's work
        on it (serializing, hashing, writing) competes for the CPU with sending, so it starts after.
        """
        todo = iter(pages)
        width = max(1, min(width, len(pages)))
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"knack-{self.app_name}")
        running: dict[Future[dict[str, Any]], int] = {}
        try:
            for page in todo:
                running[pool.submit(fetch, page)] = page
                if len(running) >= width:
                    break
            yield from self._fresh(first, seen)
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    body = future.result()
                    next_page = next(todo, None)
                    if next_page is not None:
                        running[pool.submit(fetch, next_page)] = next_page
                    yield from self._fresh(body, seen)
        except BaseException:  # a failed page, or the caller stopped reading
            abandon.set()  # in-flight retries stop waiting; nothing new is sent
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # --- one request, with retries -------------------------------------------------------------------

    def _rate_limit_wait(self, exc: BaseException | None) -> float | None:
        """After a 429: the reset Knack announced, and never less than ``min_rate_limit_wait``."""
        if isinstance(exc, TransientReply) and exc.status == 429:
            return max(self._min_429_wait, exc.wait_hint or 0.0)
        return None

    def _stop(self, state: RetryCallState) -> bool:
        """Give up after ``max_attempts``; a 429 is Knack saying "wait", not failing: 4 times as many."""
        exc = failure_of(state)
        rate_limited = isinstance(exc, TransientReply) and exc.status == 429
        return state.attempt_number >= self.max_attempts * (4 if rate_limited else 1)

    def _count_retry(self, state: RetryCallState) -> None:
        with self._lock:
            self.stats.retries += 1

    def _get(self, route: str, params: dict[str, Any], container: str | None, *, auth: bool = True,
             abandon: threading.Event | None = None) -> Any:
        loop = retrying(attempts=self._stop, wait=self._backoff, before_sleep=self._count_retry,
                        sleep=abandon.wait if abandon is not None else time.sleep)
        try:
            return loop(self._attempt, route, params, container, auth, abandon)
        except TransientReply as exc:
            tries = loop.statistics.get("attempt_number", self.max_attempts)
            raise KnackError(f"Knack kept failing after {tries} attempts: {exc}", app=self.app_name,
                             container=container, url=route, status=exc.status) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            why = str(exc) if isinstance(exc, RequestDeadlineExceeded) else type(exc).__name__
            raise KnackError(f"Knack unreachable after {self.max_attempts} attempts: {why}",
                             app=self.app_name, container=container, url=route) from None

    def _attempt(self, route: str, params: dict[str, Any], container: str | None, auth: bool,
                 abandon: threading.Event | None) -> Any:
        if abandon is not None and abandon.is_set():
            raise KnackError("fetch abandoned", app=self.app_name, container=container, url=route)
        self._pace(abandon)
        self.limiter.acquire()
        with self._lock:
            self.stats.requests += 1
        response = self.session.get(self.api_url + route, params=params, timeout=self.timeout,
                                    headers=self._creds.headers() if auth else None)
        self._note_quota(response)
        self._note_time(response)
        status = response.status_code
        if status == 200:
            try:
                return response.json()
            except ValueError:
                raise TransientReply(status, "response was not complete JSON") from None
        message = _knack_message(response)
        if status == 429 and response.headers.get("X-PlanLimit-Remaining") == "0":
            raise KnackQuotaError(f"the daily Knack quota is exhausted: {message}", app=self.app_name,
                                  container=container, url=route, status=status)
        if status == 429:  # for rate: the requests arrived closer together than the limiter let them go
            self.limiter.throttled()
        if is_transient_status(status):
            raise TransientReply(status, message, self._reset_wait(response) if status == 429 else None)
        raise KnackError(f"Knack refused the request: HTTP {status}: {message}"
                         f"{_REFUSAL_HINTS.get(status, '').replace('<app>', self.app_name or '<app>')}",
                         app=self.app_name, container=container, url=route, status=status)

    def _pace(self, abandon: threading.Event | None) -> None:
        """Space this client's requests 1/limit apart before asking the limiter.

        The limiter admits a whole second's worth at once; sent together, those requests leave over
        a few hundred milliseconds when the process is busy (and their responses come back together,
        busying it more), so arrivals bunch up across the window's edge and Knack answers 429 to a
        client that counted right. Evenly spaced requests arrive as evenly as they leave.
        """
        rate = float(getattr(self.limiter, "per_second", 0) or 0)
        if rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
        if slot > now:
            (abandon.wait if abandon is not None else time.sleep)(slot - now)

    def _reset_wait(self, response: requests.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        try:
            return min(max(float(reset) - self._clock(), 0.0), 60.0) if reset else None
        except ValueError:
            return None

    def _note_time(self, response: requests.Response) -> None:
        try:
            when = parsedate_to_datetime(response.headers.get("Date") or "")
        except (TypeError, ValueError):
            return
        with self._lock:
            self._server_time = when if when.tzinfo else when.replace(tzinfo=UTC)

    def _note_quota(self, response: requests.Response) -> None:
        remaining = response.headers.get("X-PlanLimit-Remaining")
        if remaining is not None and remaining.strip().lstrip("-").isdigit():
            with self._lock:
                self.stats.quota_remaining = int(remaining)
