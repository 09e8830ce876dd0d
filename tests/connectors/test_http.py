"""The HTTP layer: retries, idempotency rules, vendor wait signals, rate limiting, auth flows,
redaction and counters — against small ``httpx.MockTransport`` fakes of vendor behaviour."""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from sync import __version__
from sync.connectors.errors import Action, classify_exception
from sync.connectors.http import (
    READ_ONLY,
    BearerAuth,
    CloseBasicAuth,
    ParsaLinkJWTAuth,
    RequestStats,
    RetryPolicy,
    build_client,
    redact_headers,
    redact_url,
    reset_epoch_header,
    reset_seconds_header,
    retry_after_header,
)
from sync.connectors.ratelimit import RateLimiter, TokenBucket

from .conftest import FAST_RETRY, Handler, Recorder, json_response

BASE = "http://vendor.test/api"


class SpyLimiter:
    """A RateLimiter that records calls instead of waiting."""

    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    def acquire(self, system: str) -> None:
        self.acquired += 1

    def penalize(self, system: str, seconds: float) -> None:
        self.penalties.append(seconds)


def client_for(
    handler: Handler,
    *,
    retry: RetryPolicy = FAST_RETRY,
    limiter: RateLimiter | None = None,
    auth: httpx.Auth | None = None,
    stats: RequestStats | None = None,
    retry_after: Any = retry_after_header,
) -> tuple[httpx.Client, Recorder]:
    recorder = Recorder(handler)
    client = build_client(
        system="vendor",
        base_url=BASE,
        auth=auth,
        timeout=5.0,
        limiter=limiter,
        retry=retry,
        transport=recorder.transport(),
        retry_after=retry_after,
        stats=stats or RequestStats(),
    )
    return client, recorder


def sequence(*outcomes: httpx.Response | Exception) -> Handler:
    """A handler answering ``outcomes`` in order (the last one repeats)."""
    items = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return handler


OK = json_response(200, {"ok": True})


# -- retries ---------------------------------------------------------------------------------
def test_get_is_retried_through_5xx_until_it_succeeds() -> None:
    """A GET answered 500, 502, 503 and then 200 returns the 200 after four attempts."""
    client, rec = client_for(
        sequence(json_response(500, {}), json_response(502, {}), json_response(503, {}), OK)
    )
    assert client.get("/things").json() == {"ok": True}
    assert len(rec.requests) == 4


def test_retries_are_bounded_and_the_last_response_is_returned() -> None:
    """A GET that always fails stops after the policy's attempts and hands back the last 503."""
    client, rec = client_for(sequence(json_response(503, {"error": "down"})))
    response = client.get("/things")
    assert response.status_code == 503
    assert response.json() == {"error": "down"}
    assert len(rec.requests) == FAST_RETRY.attempts


def test_retries_are_bounded_in_total_time() -> None:
    """With a 0.05 s total budget and 20 ms waits, a failing GET stops well before its attempts."""
    policy = RetryPolicy(
        attempts=100, timeout=0.05, wait_initial=0.02, wait_max=0.02, wait_jitter=0
    )
    client, rec = client_for(sequence(json_response(503, {})), retry=policy)
    started = time.monotonic()
    assert client.get("/x").status_code == 503
    assert time.monotonic() - started < 1.0
    assert 2 <= len(rec.requests) <= 6


def test_read_timeout_on_get_is_retried() -> None:
    """A GET whose first attempt times out is sent again."""
    client, rec = client_for(sequence(httpx.ReadTimeout("slow"), OK))
    assert client.get("/x").status_code == 200
    assert len(rec.requests) == 2


def test_4xx_is_never_retried() -> None:
    """A 400, 401, 404 or 422 is answered after exactly one attempt."""
    for status in (400, 401, 404, 422):
        client, rec = client_for(sequence(json_response(status, {})))
        assert client.get("/x").status_code == status
        assert len(rec.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_post_answered_5xx_is_not_retried(status: int) -> None:
    """A POST that may have been applied (5xx) surfaces after one attempt: no blind duplicate."""
    client, rec = client_for(sequence(json_response(status, {}), OK))
    assert client.post("/things", json={"name": "x"}).status_code == status
    assert len(rec.requests) == 1


def test_post_that_timed_out_is_not_retried() -> None:
    """A POST whose answer never came raises the timeout after one attempt."""
    client, rec = client_for(sequence(httpx.ReadTimeout("no answer"), OK))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/things", json={"name": "x"})
    assert len(rec.requests) == 1


def test_post_that_could_not_connect_is_retried() -> None:
    """A POST that never reached the server (connect error) is safe to send again."""
    client, rec = client_for(sequence(httpx.ConnectError("refused"), OK))
    assert client.post("/things", json={"name": "x"}).status_code == 200
    assert len(rec.requests) == 2


def test_post_refused_with_429_is_retried() -> None:
    """A 429 means the POST was not processed, so it is sent again."""
    client, rec = client_for(sequence(json_response(429, {}), OK))
    assert client.post("/things", json={"name": "x"}).status_code == 200
    assert len(rec.requests) == 2
    assert rec.requests[1].content == rec.requests[0].content


def test_post_with_idempotency_key_is_retried_after_5xx() -> None:
    """A POST carrying an Idempotency-Key (Truto) is replay-safe, so a 502 is retried."""
    client, rec = client_for(sequence(json_response(502, {}), OK))
    response = client.post("/x", json={}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 200
    assert len(rec.requests) == 2


def test_a_read_only_post_is_retried_like_a_get() -> None:
    """A POST marked read-only (HubSpot's search) changes nothing: a 502 or a dropped answer is
    retried, and the mark is never sent to the vendor."""
    client, rec = client_for(sequence(json_response(502, {}), httpx.ReadTimeout("lost"), OK))
    response = client.post("/search", json={}, extensions={READ_ONLY: True})
    assert response.status_code == 200
    assert len(rec.requests) == 3
    assert not any(READ_ONLY in name for name in rec.requests[0].headers)


def test_patch_and_delete_are_retried_after_5xx() -> None:
    """PATCH and DELETE are idempotent: a 503 is retried."""
    for method in ("PATCH", "DELETE"):
        client, rec = client_for(sequence(json_response(503, {}), OK))
        assert client.request(method, "/x/1", json={} if method == "PATCH" else None).is_success
        assert len(rec.requests) == 2


# -- vendor wait signals -----------------------------------------------------------------------
def test_retry_after_is_honoured_on_429() -> None:
    """The retry waits the vendor's Retry-After (here 0.15 s), not the tiny exponential backoff."""
    policy = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.001, wait_jitter=0)
    client, _ = client_for(
        sequence(json_response(429, {}, **{"Retry-After": "0.15"}), OK), retry=policy
    )
    started = time.monotonic()
    assert client.get("/x").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_vendor_wait_is_capped_by_the_policy() -> None:
    """A vendor asking for an hour is capped at ``max_vendor_wait``."""
    client, rec = client_for(sequence(json_response(429, {}, **{"Retry-After": "3600"}), OK))
    started = time.monotonic()
    assert client.get("/x").status_code == 200
    assert time.monotonic() - started < 1.0
    assert len(rec.requests) == 2


def test_429_penalizes_the_limiter_with_the_vendor_wait() -> None:
    """A 429 tells the limiter to hold the whole system back for the vendor's wait."""
    limiter = SpyLimiter()
    client, _ = client_for(
        sequence(json_response(429, {}, **{"Retry-After": "0.01"}), OK), limiter=limiter
    )
    client.get("/x")
    assert limiter.penalties == [0.01]
    assert limiter.acquired == 2  # one token per attempt, retries included


def test_429_without_signal_penalizes_by_the_initial_backoff() -> None:
    """Ruddr sends no wait: the limiter is penalized by the policy's first backoff step."""
    limiter = SpyLimiter()
    client, _ = client_for(
        sequence(json_response(429, {}), OK), limiter=limiter, retry_after=lambda r: None
    )
    client.get("/x")
    assert limiter.penalties == [FAST_RETRY.wait_initial]


def test_signal_parsers_read_each_vendor_format() -> None:
    """Retry-After seconds and HTTP-date, a reset epoch and reset seconds all become seconds."""
    at = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry_after_header(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert 25 < (retry_after_header(httpx.Response(429, headers={"Retry-After": at})) or 0) <= 30
    epoch = httpx.Response(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 20)})
    assert 18 <= (reset_epoch_header(epoch, "x-ratelimit-reset") or 0) <= 20
    reset = httpx.Response(429, headers={"ratelimit-reset": "12"})
    assert reset_seconds_header(reset, "ratelimit-reset") == 12.0
    assert retry_after_header(httpx.Response(429)) is None
    assert retry_after_header(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def test_exception_table_separates_never_sent_from_maybe_sent() -> None:
    """Connect failures are 'never sent'; read timeouts and dropped connections 'maybe sent'."""
    assert classify_exception(httpx.ConnectError("x")) == (Action.RETRY, False)
    assert classify_exception(httpx.ConnectTimeout("x")) == (Action.RETRY, False)
    assert classify_exception(httpx.ReadTimeout("x")) == (Action.RETRY, True)
    assert classify_exception(httpx.RemoteProtocolError("x")) == (Action.RETRY, True)
    assert classify_exception(ValueError("x")) is None


# -- client basics, redaction, counters ---------------------------------------------------------
def test_client_sends_user_agent_and_base_url() -> None:
    """Every request names crmsync and its version and goes under the system's base URL."""
    client, rec = client_for(sequence(OK))
    client.get("/things", params={"a": 1})
    assert rec.requests[0].headers["user-agent"] == f"crmsync/{__version__}"
    assert str(rec.requests[0].url) == f"{BASE}/things?a=1"


def test_redact_url_hides_user_info_and_secret_query_values() -> None:
    """Keys, tokens and passwords in a URL are masked; other parameters are kept."""
    url = "https://user:pw@api.test/x?api_key=s1&token=s2&limit=10&access_token=s3&key=s4"
    redacted = redact_url(url)
    for secret in ("pw", "s1", "s2", "s3", "s4", "user"):
        assert secret not in redacted
    assert "limit=10" in redacted and "api.test/x" in redacted


def test_redact_headers_hides_credentials() -> None:
    """Authorization, cookies and api-key headers are masked; others are kept."""
    headers = {
        "Authorization": "Bearer t0ken",
        "X-Api-Key": "k3y",
        "Cookie": "c=1",
        "Accept": "application/json",
    }
    assert redact_headers(headers) == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Cookie": "***",
        "Accept": "application/json",
    }


def test_logged_failures_carry_no_secret() -> None:
    """The log lines of a failing request mask the bearer token and the query key."""
    client, _ = client_for(sequence(json_response(500, {})), auth=BearerAuth("sekrit-token"))
    with capture_logs() as logs:
        client.get("/x", params={"api_key": "sekrit-key"})
    assert logs, "failures are logged"
    assert "sekrit" not in json.dumps(logs, default=str)
    assert any(entry.get("status") == 500 for entry in logs)


def test_stats_count_requests_by_system_method_and_status() -> None:
    """Each attempt is counted; failures without a response count under the exception name."""
    stats = RequestStats()
    client, _ = client_for(
        sequence(json_response(503, {}), httpx.ReadTimeout("t"), OK), stats=stats
    )
    client.get("/x")
    client.post("/x", json={})
    assert stats.count("vendor", "GET", 503) == 1
    assert stats.count("vendor", "GET", "ReadTimeout") == 1
    assert stats.count("vendor", "GET", 200) == 1
    assert stats.count("vendor", "POST") == 1
    assert stats.count("vendor") == 4


# -- rate limiter ------------------------------------------------------------------------------
class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def test_bucket_allows_a_burst_then_paces_at_the_rate(fake_time: FakeTime) -> None:
    """With rate 10/s and burst 3, three requests go at once and the rest 0.1 s apart."""
    bucket = TokenBucket(clock=fake_time.clock, sleep=fake_time.sleep)
    bucket.configure("s", rate=10, burst=3)
    for _ in range(6):
        bucket.acquire("s")
    assert fake_time.slept == pytest.approx([0.1, 0.1, 0.1])


def test_bucket_leaves_unconfigured_systems_alone(fake_time: FakeTime) -> None:
    """A system without a configured limit is never delayed."""
    bucket = TokenBucket(clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(100):
        bucket.acquire("free")
    assert fake_time.slept == []


def test_a_resize_keeps_the_tokens_the_bucket_has(fake_time: FakeTime) -> None:
    """A size announced on every answer never refills the bucket: two of three tokens spent,
    a resize to 5/s with burst 2 leaves one, and the next ones cost 1/5 s."""
    bucket = TokenBucket(clock=fake_time.clock, sleep=fake_time.sleep)
    bucket.configure("s", rate=10, burst=3)
    bucket.acquire("s")
    bucket.acquire("s")
    bucket.resize("s", 5, 2)
    bucket.acquire("s")
    bucket.acquire("s")
    assert fake_time.slept == pytest.approx([0.2])
    assert bucket.rate("s") == 5


def test_penalty_holds_everyone_back_then_resumes_empty(fake_time: FakeTime) -> None:
    """After penalize(2 s) the next request waits 2 s plus one token, not a fresh burst."""
    bucket = TokenBucket(clock=fake_time.clock, sleep=fake_time.sleep)
    bucket.configure("s", rate=10, burst=5)
    bucket.penalize("s", 2.0)
    bucket.acquire("s")
    assert fake_time.slept == pytest.approx([2.1])
    bucket.acquire("s")
    assert fake_time.slept[-1] == pytest.approx(0.1)


def test_bucket_is_thread_safe_and_paces_concurrent_callers() -> None:
    """40 acquisitions from 8 threads at 200/s (burst 1) take about 0.2 s, not less."""
    bucket = TokenBucket()
    bucket.configure("s", rate=200, burst=1)
    started = time.monotonic()

    def work() -> None:
        for _ in range(5):
            bucket.acquire("s")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 39 / 200 - 0.01


# -- auth --------------------------------------------------------------------------------------
def test_close_basic_auth_sends_key_as_user_with_empty_password() -> None:
    """Close's key goes as the Basic user name with an empty password."""
    client, rec = client_for(sequence(OK), auth=CloseBasicAuth("api_123"))
    client.get("/me")
    expected = base64.b64encode(b"api_123:").decode()
    assert rec.requests[0].headers["authorization"] == f"Basic {expected}"


def jwt(exp: float, tag: str) -> str:
    """An unsigned JWT with an ``exp`` claim (the auth flow only reads ``exp``)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'tag': tag})}.sig"


class FakeParsaLinkAuth:
    """ParsaLink's login/refresh endpoints with rotating refresh tokens, as documented."""

    def __init__(self, ttl: float = 3600) -> None:
        self.ttl = ttl
        self.serial = 0
        self.valid_access: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self.password = "right"

    def issue(self, with_refresh: bool) -> dict[str, str]:
        self.serial += 1
        access = jwt(time.time() + self.ttl, f"a{self.serial}")
        self.valid_access = {access}
        body = {"access": access}
        if with_refresh:
            refresh = f"r{self.serial}"
            self.valid_refresh = {refresh}  # rotation: the previous one is dead
            body["refresh"] = refresh
        return body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/auth/login/":
            self.logins += 1
            if json.loads(request.content)["password"] != self.password:
                return json_response(401, {"detail": "No active account found"})
            return json_response(200, self.issue(True))
        if path == "/api/auth/token/refresh/":
            self.refreshes += 1
            token = json.loads(request.content)["refresh"]
            if token not in self.valid_refresh:
                return json_response(401, {"detail": "Token is invalid or expired"})
            return json_response(200, self.issue(True))
        auth = request.headers.get("authorization", "").removeprefix("Bearer ")
        if auth not in self.valid_access:
            return json_response(401, {"detail": "Given token not valid"})
        return OK


@pytest.fixture
def parsalink_auth() -> Iterator[tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client]]:
    fake = FakeParsaLinkAuth()
    auth = ParsaLinkJWTAuth(BASE, "ops@example.com", "right")
    client, _ = client_for(fake, auth=auth)
    yield fake, auth, client
    client.close()


def test_jwt_logs_in_once_and_reuses_the_access_token(
    parsalink_auth: tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client],
) -> None:
    """Three requests cost one login."""
    fake, _, client = parsalink_auth
    for _ in range(3):
        assert client.get("/opportunities/").status_code == 200
    assert fake.logins == 1


def test_jwt_refreshes_on_401_and_keeps_the_rotated_refresh_token(
    parsalink_auth: tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client],
) -> None:
    """A revoked access token is refreshed; each refresh's new refresh token is used next time."""
    fake, auth, client = parsalink_auth
    client.get("/x")
    for expected_refresh in ("r2", "r3"):
        fake.valid_access = set()  # the server forgets the access token
        assert client.get("/x").status_code == 200
        assert auth.refresh == expected_refresh
    assert (fake.logins, fake.refreshes) == (1, 2)


def test_jwt_logs_in_again_when_the_refresh_token_is_refused(
    parsalink_auth: tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client],
) -> None:
    """If another worker rotated the refresh token away, the flow logs in again."""
    fake, _, client = parsalink_auth
    client.get("/x")
    fake.valid_access, fake.valid_refresh = set(), set()
    assert client.get("/x").status_code == 200
    assert (fake.logins, fake.refreshes) == (2, 1)


def test_jwt_refreshes_before_expiry_without_a_401(
    parsalink_auth: tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client],
) -> None:
    """An access token within the leeway of its exp is refreshed before the request is sent."""
    fake, auth, client = parsalink_auth
    fake.ttl = 10  # shorter than the 30 s leeway
    client.get("/x")
    client.get("/x")
    assert fake.refreshes == 1
    assert auth.refresh == "r2"


def test_jwt_wrong_password_answers_the_login_401(
    parsalink_auth: tuple[FakeParsaLinkAuth, ParsaLinkJWTAuth, httpx.Client],
) -> None:
    """A refused login is the answer to the request, with ParsaLink's message."""
    fake, _, client = parsalink_auth
    fake.password = "changed"
    response = client.get("/x")
    assert response.status_code == 401
    assert response.json() == {"detail": "No active account found"}


def test_wait_signal_in_the_body_of_a_streamed_429_is_read() -> None:
    """A hook reading the 429 body (Close's ``error.rate_reset``) works on a streamed response."""
    body = json.dumps({"error": {"rate_reset": 0.004}}).encode()
    answers = iter([httpx.Response(429, stream=httpx.ByteStream(body)), OK])
    limiter = SpyLimiter()
    client, _ = client_for(
        lambda request: next(answers),
        limiter=limiter,
        retry_after=lambda r: r.json()["error"]["rate_reset"],
    )
    assert client.get("/x").status_code == 200
    assert limiter.penalties == [0.004]
