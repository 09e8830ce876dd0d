"""Logging: one configuration for structlog and the stdlib, ids from contextvars, no secrets."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from sync.logging import (
    REDACTED,
    bind_record,
    bind_run,
    bind_system,
    bind_task,
    clear_context,
    configure_logging,
    get_logger,
    log_context,
    redact,
    redact_text,
)

pytestmark = pytest.mark.usefixtures("restore_logging")

SECRETS = ("sk_live_abc123", "refresh-xyz", "hunter2", "close-key-999", "tok_42")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into: {text}"


def test_nested_secrets_are_removed_from_event_dicts() -> None:
    """Authorization headers, API keys, tokens and passwords are redacted at any depth."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    get_logger("t").info(
        "request",
        headers={"Authorization": "Bearer sk_live_abc123", "Accept": "application/json"},
        body={"auth": {"refresh_token": "refresh-xyz", "user": {"password": "hunter2"}}},
        items=[{"api_key": "close-key-999"}, ("X-Api-Key", "tok_42")],
        system="close",
    )
    output = stream.getvalue()
    assert_no_secret(output)
    (line,) = json_lines(stream)
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["system"] == "close"


def test_secrets_in_urls_are_removed() -> None:
    """Query-string keys and tokens, and user info (Close's `https://key:@host`) are redacted."""
    text = redact_text(
        "GET https://close-key-999:@api.close.com/api/v1/opportunity/?api_key=sk_live_abc123"
        "&_limit=100&access_token=tok_42 and postgresql://crm:hunter2@db/crm"
    )
    assert_no_secret(text)
    assert "_limit=100" in text
    assert "https://[REDACTED]@api.close.com/api/v1/opportunity/" in text


def test_secret_keys_inside_logged_json_text_are_removed() -> None:
    """A response body logged as text keeps its shape but loses its token values."""
    text = redact_text('{"access_token": "tok_42", "token_type": "Bearer", "expires_in": 3600}')
    assert_no_secret(text)
    assert '"expires_in": 3600' in text


def test_stdlib_loggers_are_redacted_too() -> None:
    """Lines from libraries using the stdlib (httpx, celery) pass through the same redaction."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("celery.worker").warning(
        "retrying https://api.example.com/x?token=%s", "tok_42", extra={"password": "hunter2"}
    )
    assert_no_secret(stream.getvalue())
    (line,) = json_lines(stream)
    assert line["logger"] == "celery.worker"
    assert line["level"] == "warning"


def test_httpx_headers_objects_are_redacted() -> None:
    """httpx.Headers (a multi-dict, not a dict) loses its Authorization value."""
    with capture_logs(processors=[redact]) as logs:
        structlog.get_logger().info(
            "sent", headers=httpx.Headers({"Authorization": "Basic close-key-999"})
        )
    assert logs[0]["headers"] == {"authorization": REDACTED}


def test_tracebacks_are_redacted() -> None:
    """An exception whose message quotes a secret URL is redacted in the rendered traceback."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        raise RuntimeError("failed GET https://api.x.com/?api_key=sk_live_abc123")
    except RuntimeError:
        get_logger("t").exception("push_failed")
    (line,) = json_lines(stream)
    assert "RuntimeError" in str(line["exception"])
    assert_no_secret(stream.getvalue())


def test_plain_keys_and_values_are_kept() -> None:
    """Redaction does not eat ordinary data that merely looks similar."""
    event = {"event": "done", "tokens_used": 3, "next_steps": "call", "url": "https://a.b/c?page=2"}
    assert redact(None, "info", dict(event)) == event


def test_context_ids_are_added_to_every_line() -> None:
    """Bound run/system/record/task ids appear on each line until the context is cleared."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    bind_run("run-1")
    bind_system("close")
    bind_record("rec-9")
    bind_task("task-7", "sync.push")
    get_logger().info("pushed")
    with log_context(attempt=2):
        logging.getLogger("httpx").warning("slow")
    clear_context()
    get_logger().info("after")
    first, second, third = json_lines(stream)
    for line in (first, second):
        assert line["run_id"] == "run-1"
        assert line["system"] == "close"
        assert line["record_id"] == "rec-9"
        assert line["task_id"] == "task-7"
        assert line["task"] == "sync.push"
    assert second["attempt"] == 2
    assert "run_id" not in third


def test_json_when_not_a_terminal_console_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a choice: JSON lines when stderr is not a TTY, readable console output when it is."""
    monkeypatch.delenv("CRMSYNC_LOG_FORMAT", raising=False)
    piped = io.StringIO()
    assert configure_logging(stream=piped) == "json"
    get_logger().info("hello", user_id=1)
    assert json_lines(piped)[0]["event"] == "hello"
    tty = TTY()
    assert configure_logging(stream=tty) == "console"
    get_logger().info("hello", user_id=1)
    assert "hello" in tty.getvalue()
    assert not tty.getvalue().lstrip().startswith("{")


def test_environment_forces_json_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRMSYNC_LOG_FORMAT=json wins over the TTY guess."""
    monkeypatch.setenv("CRMSYNC_LOG_FORMAT", "json")
    assert configure_logging(stream=TTY()) == "json"


def test_console_output_is_redacted() -> None:
    """The console renderer gets redacted events too."""
    tty = TTY()
    configure_logging("console", "INFO", stream=tty)
    get_logger().info("login", password="hunter2", url="https://u:sk_live_abc123@h/")
    assert_no_secret(tty.getvalue())


def test_level_filters_lines_and_configure_twice_keeps_one_handler() -> None:
    """Below-level lines are dropped, and reconfiguring replaces (not duplicates) the handler."""
    stream = io.StringIO()
    configure_logging("json", "WARNING", stream=stream)
    configure_logging("json", "WARNING", stream=stream)
    get_logger().info("quiet")
    get_logger().warning("loud")
    assert [line["event"] for line in json_lines(stream)] == ["loud"]


def test_unknown_format_is_refused() -> None:
    """A typo in the format is an error, not a silent fallback."""
    with pytest.raises(ValueError, match="console or json"):
        configure_logging("xml", stream=io.StringIO())


def test_default_stream_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit stream, lines go to the current sys.stderr, even after it is swapped."""
    configure_logging("json", "INFO")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    get_logger().info("to_the_new_stderr")
    assert json_lines(swapped)[0]["event"] == "to_the_new_stderr"


def test_a_pool_thread_logs_with_the_run_of_whoever_submitted_the_work() -> None:
    """Pool threads inherit no contextvars: through ``carried`` a line logged there names the
    submitter's run and system and the record it is about; without it, none of them."""
    from concurrent.futures import ThreadPoolExecutor

    from sync.logging import carried

    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    log = get_logger("test.pool")
    clear_context()
    bind_run("run_pool", system="close")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(carried(log.info, record_id="rec_1"), "pushed").result()
            pool.submit(log.info, "bare").result()
    finally:
        clear_context()
    pushed, bare = json_lines(stream)
    assert (pushed["run_id"], pushed["system"], pushed["record_id"]) == (
        "run_pool",
        "close",
        "rec_1",
    )
    assert "run_id" not in bare


def test_json_lines_carry_no_colour_codes() -> None:
    """uvicorn's ``color_message`` copy is dropped and escape codes are stripped in JSON mode."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    # a stdlib record as uvicorn makes it (its own logger's state belongs to whichever
    # in-process uvicorn an earlier test ran; the processor drops the key for any logger)
    logging.getLogger("tests.uvicorn_like").info(
        "Uvicorn running on %s", "http://x", extra={"color_message": "\x1b[1m%s\x1b[0m"}
    )
    get_logger("t").info("\x1b[32mgreen\x1b[0m")
    first, second = json_lines(stream)
    assert "color_message" not in first and first["event"] == "Uvicorn running on http://x"
    assert second["event"] == "green"
