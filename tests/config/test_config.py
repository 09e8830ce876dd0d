"""Loading config.yaml: interpolation, secrets, durations, and errors that point at the line."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from sync.config import (
    MASK,
    Config,
    ConfigError,
    ConfigProblem,
    format_duration,
    load_config,
    mask_url,
    parse_duration,
)

VALID = """\
store:
  url: sqlite:///crmsync.db
sync:
  lookback: 2m
  reconcile_every: 24h
conflicts:
  default: latest
  priority: [ruddr, close]
  fields:
    amount: {prefer: [ruddr]}
    description: manual
systems:
  ruddr:
    type: ruddr
    base_url: http://127.0.0.1:8711/api/workspace
    credentials: {token: "${RUDDR_TOKEN}"}
    poll_every: 30s
    rate_limit: {rate: 20, burst: 60}
  close:
    type: close
    base_url: http://127.0.0.1:8712/api/v1
    credentials: {api_key: "${CLOSE_API_KEY:-close-test-key}"}
    deletes: propagate
mapping:
  ruddr:
    name: {path: name}
  close:
    amount: {path: value, transform: cents}
"""
ENV = {"RUDDR_TOKEN": "ruddr-secret-token"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=ENV if env is None else env)
    return caught.value.problems


def only(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, env)
    assert len(found) == 1, [str(p) for p in found]
    return str(found[0])


def at(tmp_path: Path, text: str, needle: str, nth: int = 1) -> str:
    """``<file>:<line> `` of the ``nth`` line of ``text`` containing ``needle``."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return f"{tmp_path / 'config.yaml'}:{lines[nth - 1]} "


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --------------------------------------------------------------------------- a valid file


def test_valid_file_loads_into_typed_models(tmp_path: Path) -> None:
    """A correct file becomes typed models: durations, policies, interpolated secrets."""
    config = load_config(write(tmp_path, VALID), env=ENV)
    assert isinstance(config, Config)
    assert config.sync.lookback == dt.timedelta(minutes=2)
    assert config.systems["ruddr"].poll_every == dt.timedelta(seconds=30)
    assert config.systems["ruddr"].credentials == {"token": "ruddr-secret-token"}
    assert config.systems["close"].credentials == {"api_key": "close-test-key"}
    assert config.conflicts.fields["description"] == "manual"
    assert config.conflicts.fields["amount"].prefer == ["ruddr"]  # type: ignore[union-attr]
    amount = config.mapping["close"].amount
    assert amount is not None and amount.read == "value"


def test_pushes_in_flight_per_system_default_to_eight_and_must_be_positive(
    tmp_path: Path,
) -> None:
    """`systems.NAME.concurrency` bounds the pushes in flight to one system: 8 unless set,
    any number from 1 to 64, and 0 is an error naming the key."""
    text = replace_line(VALID, "poll_every: 30s", "poll_every: 30s\n    concurrency: 2")
    config = load_config(write(tmp_path, text), env=ENV)
    assert config.systems["ruddr"].concurrency == 2
    assert config.systems["close"].concurrency == 8
    zero = replace_line(VALID, "poll_every: 30s", "poll_every: 30s\n    concurrency: 0")
    assert only(tmp_path, zero).startswith(
        at(tmp_path, zero, "concurrency:") + "systems.ruddr.concurrency: "
    )


def test_env_default_used_only_when_variable_is_unset_or_empty(tmp_path: Path) -> None:
    """`${VAR:-default}` takes the environment's value when set, the default otherwise."""
    path = write(tmp_path, VALID)
    config = load_config(path, env={**ENV, "CLOSE_API_KEY": "from-env"})
    assert config.systems["close"].credentials["api_key"] == "from-env"
    config = load_config(path, env={**ENV, "CLOSE_API_KEY": ""})
    assert config.systems["close"].credentials["api_key"] == "close-test-key"


def test_interpolation_inside_a_longer_string_and_dollar_escape(tmp_path: Path) -> None:
    """Variables can sit inside a value, and `$$` stands for a literal dollar sign."""
    text = replace_line(
        VALID,
        "base_url: http://127.0.0.1:8712/api/v1",
        "base_url: http://${CLOSE_HOST}:8712/api/v1",
    )
    text = replace_line(text, "deletes: propagate", "deletes: propagate\n    options: {note: a$$b}")
    config = load_config(write(tmp_path, text), env={**ENV, "CLOSE_HOST": "close.local"})
    assert config.systems["close"].base_url == "http://close.local:8712/api/v1"
    assert config.systems["close"].options == {"note": "a$b"}


def test_database_and_broker_urls_come_from_the_environment(tmp_path: Path) -> None:
    """CRMSYNC_DATABASE_URL and CRMSYNC_BROKER_URL override store.url and broker.url."""
    env = {
        **ENV,
        "CRMSYNC_DATABASE_URL": "postgresql+psycopg://u:pw@db/crm",
        "CRMSYNC_BROKER_URL": "redis://127.0.0.1:6379/0",
    }
    config = load_config(write(tmp_path, VALID), env=env)
    assert config.store.url == "postgresql+psycopg://u:pw@db/crm"
    assert config.broker.url == "redis://127.0.0.1:6379/0"


def test_empty_broker_url_means_embedded_mode(tmp_path: Path) -> None:
    """`broker.url: ""` (what an unset `${CRMSYNC_BROKER_URL:-}` gives) is no broker at all."""
    text = VALID.replace("sync:\n", 'broker:\n  url: "${BROKER:-}"\nsync:\n', 1)
    assert load_config(write(tmp_path, text), env=ENV).broker.url is None


def test_config_path_defaults_to_crmsync_config_variable(tmp_path: Path) -> None:
    """Without a path, the file named by CRMSYNC_CONFIG is loaded."""
    path = write(tmp_path, VALID)
    config = load_config(env={**ENV, "CRMSYNC_CONFIG": str(path)})
    assert set(config.systems) == {"ruddr", "close"}


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    """Settings written once under a YAML anchor can be merged into another system."""
    text = replace_line(VALID, "  ruddr:\n    type: ruddr\n", "  ruddr: &base\n    type: ruddr\n")
    text = replace_line(
        text, "  close:\n    type: close\n", "  close:\n    <<: *base\n    type: close\n"
    )
    config = load_config(write(tmp_path, text), env=ENV)
    assert config.systems["close"].poll_every == dt.timedelta(seconds=30)
    assert config.systems["close"].rate_limit is not None
    assert config.systems["close"].deletes == "propagate"
    assert config.systems["close"].type == "close"


# --------------------------------------------------------------------------- ten kinds of mistake


def test_missing_required_key_names_line_and_path(tmp_path: Path) -> None:
    """A system without `type` is reported at the system's line with the missing key's path."""
    text = VALID.replace("    type: close\n", "")
    message = only(tmp_path, text)
    assert message.startswith(
        at(tmp_path, text, "  close:") + "systems.close.type: expected this required key"
    )
    assert message.endswith("got nothing")


def test_wrong_type_names_line_and_path(tmp_path: Path) -> None:
    """A word where a number belongs names the file, line, key, expectation and value."""
    text = replace_line(VALID, "rate_limit: {rate: 20, burst: 60}", "rate_limit: {rate: fast}")
    assert only(tmp_path, text) == (
        at(tmp_path, text, "rate_limit:")
        + 'systems.ruddr.rate_limit.rate: expected a number, got "fast"'
    )


def test_bad_duration_reads_like_the_issue_example(tmp_path: Path) -> None:
    """`poll_every: soon` gives `config.yaml:N systems.ruddr.poll_every: expected a duration…`."""
    text = replace_line(VALID, "poll_every: 30s", "poll_every: soon")
    assert only(tmp_path, text) == (
        at(tmp_path, text, "poll_every:")
        + 'systems.ruddr.poll_every: expected a duration like "30s", "2m", "24h" or "1d", '
        + 'got "soon"'
    )


def test_unknown_system_type_lists_the_supported_types(tmp_path: Path) -> None:
    """An unsupported `type` lists the supported ones."""
    text = replace_line(VALID, "type: close", "type: pipedrive")
    assert only(tmp_path, text) == (
        at(tmp_path, text, "type: pipedrive")
        + "systems.close.type: expected one of ruddr, close, parsalink, truto, salesforce or "
        + 'hubspot, got "pipedrive"'
    )


def test_unknown_key_suggests_the_closest_known_key(tmp_path: Path) -> None:
    """A misspelt key is rejected with a did-you-mean suggestion."""
    text = replace_line(VALID, "poll_every: 30s", "pol_every: 30s")
    message = only(tmp_path, text)
    assert message.startswith(
        at(tmp_path, text, "pol_every") + 'systems.ruddr.pol_every: expected "poll_every"'
    )
    assert message.endswith('got unknown key "pol_every"')


def test_missing_environment_variable_names_the_variable(tmp_path: Path) -> None:
    """`${RUDDR_TOKEN}` with the variable unset is an error at the line that uses it."""
    assert only(tmp_path, VALID, env={}) == (
        at(tmp_path, VALID, "RUDDR_TOKEN")
        + "systems.ruddr.credentials.token: expected environment variable RUDDR_TOKEN to be set, "
        + "got it unset (and no default)"
    )


def test_unset_variable_is_reported_once(tmp_path: Path) -> None:
    """An unset variable in a URL is one problem (the variable), not also a bad-URL problem."""
    text = replace_line(VALID, "base_url: http://127.0.0.1:8712/api/v1", "base_url: ${CLOSE_URL}")
    message = only(tmp_path, text)
    assert message.startswith(at(tmp_path, text, "CLOSE_URL") + "systems.close.base_url")
    assert "CLOSE_URL to be set" in message


def test_literal_secret_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    """A key written into the file is an error, and the message never repeats the secret."""
    text = replace_line(
        VALID, 'api_key: "${CLOSE_API_KEY:-close-test-key}"', "api_key: sk_live_1234"
    )
    message = only(tmp_path, text)
    assert message == (
        at(tmp_path, text, "api_key:")
        + "systems.close.credentials.api_key: expected an environment variable "
        "reference like ${CLOSE_API_KEY}, got a literal secret"
    )
    assert "sk_live_1234" not in message


def test_literal_number_as_secret_is_rejected_too(tmp_path: Path) -> None:
    """A numeric literal under credentials is a literal secret as well."""
    text = replace_line(VALID, 'api_key: "${CLOSE_API_KEY:-close-test-key}"', "api_key: 12345")
    found = problems(tmp_path, text)
    assert any("literal secret" in str(p) and p.key.endswith("api_key") for p in found)


def test_bad_url_names_line_and_path(tmp_path: Path) -> None:
    """A base URL that is not http(s) is reported with what a URL should look like."""
    text = replace_line(VALID, "base_url: http://127.0.0.1:8712/api/v1", "base_url: 127.0.0.1")
    assert only(tmp_path, text) == (
        at(tmp_path, text, "base_url: 127.0.0.1")
        + "systems.close.base_url: expected an http(s) URL like "
        'https://api.example.com/v1, got "127.0.0.1"'
    )


def test_bad_database_url_names_line_and_path(tmp_path: Path) -> None:
    """store.url must be a SQLite or PostgreSQL URL."""
    text = replace_line(VALID, "url: sqlite:///crmsync.db", "url: mysql://db/crm")
    message = only(tmp_path, text)
    assert message.startswith(
        at(tmp_path, text, "url: mysql") + "store.url: expected a database URL"
    )


def test_bad_url_from_environment_names_the_variable(tmp_path: Path) -> None:
    """An override that is not a database URL is blamed on the variable, not on the file."""
    message = only(tmp_path, VALID, env={**ENV, "CRMSYNC_DATABASE_URL": "nonsense"})
    assert message.startswith("$CRMSYNC_DATABASE_URL store.url: expected a database URL")


def test_duplicate_system_name_points_at_both_lines(tmp_path: Path) -> None:
    """Two systems with one name: the second is reported and the first one's line is given."""
    text = VALID.replace("mapping:\n", "  ruddr:\n    type: ruddr\nmapping:\n", 1)
    message = only(tmp_path, text)
    assert message == (
        at(tmp_path, text, "  ruddr:", nth=2)
        + "systems.ruddr: expected each key once, got a duplicate (first on line 13)"
    )


def test_mapping_for_an_unknown_system(tmp_path: Path) -> None:
    """A mapping section for a system that is not configured names the configured ones."""
    text = VALID.replace("  close:\n    amount:", "  hubspot:\n    amount:", 1)
    assert only(tmp_path, text) == (
        at(tmp_path, text, "  hubspot:")
        + 'mapping.hubspot: expected a system named under systems: (close, ruddr), got "hubspot"'
    )


def test_mapping_of_an_unknown_canonical_field(tmp_path: Path) -> None:
    """A mapping key that is no canonical field is rejected, suggesting the closest one."""
    text = replace_line(VALID, "    name: {path: name}", "    nmae: {path: name}")
    message = only(tmp_path, text)
    assert message.startswith(at(tmp_path, text, "nmae") + 'mapping.ruddr.nmae: expected "name"')
    assert message.endswith('got unknown key "nmae"')


def test_conflict_policies_naming_unknown_systems(tmp_path: Path) -> None:
    """`priority` and `prefer` may only name configured systems; each index is reported."""
    text = replace_line(VALID, "priority: [ruddr, close]", "priority: [ruddr, hubspot]")
    text = replace_line(text, "amount: {prefer: [ruddr]}", "amount: {prefer: [salesforce]}")
    assert [str(p) for p in problems(tmp_path, text)] == [
        at(tmp_path, text, "priority:")
        + "conflicts.priority[1]: expected a system named under systems: "
        '(close, ruddr), got "hubspot"',
        at(tmp_path, text, "amount: {prefer")
        + "conflicts.fields.amount.prefer[0]: expected a system named under "
        'systems: (close, ruddr), got "salesforce"',
    ]


def test_union_alternatives_are_one_problem_at_the_real_key(tmp_path: Path) -> None:
    """A value matching no member of a union is one problem, at the key written in the file."""
    text = replace_line(
        VALID, "amount: {path: value, transform: cents}", "amount: {path: value, write: 5}"
    )
    assert only(tmp_path, text) == (
        at(tmp_path, text, "write: 5")
        + "mapping.close.amount.write: expected a string or a list, got 5"
    )


def test_bad_conflict_policy_is_one_clear_error(tmp_path: Path) -> None:
    """A policy that is neither latest, manual nor {prefer: […]} gives one sentence, not three."""
    text = replace_line(VALID, "default: latest", "default: newest")
    assert only(tmp_path, text) == (
        at(tmp_path, text, "default: newest")
        + 'conflicts.default: expected "latest", "manual" or {prefer: [system, ...]}, got "newest"'
    )


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    """Broken YAML syntax is reported with its line, not as a traceback."""
    message = only(tmp_path, VALID + "systems: [unclosed\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "expected valid YAML" in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the file."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", env={})
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}: expected a readable config")


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    """Several mistakes are all listed, sorted by line."""
    text = replace_line(VALID, "lookback: 2m", "lookback: later")
    text = replace_line(text, "type: close", "type: nope")
    text = replace_line(text, "poll_every: 30s", "poll_every: often")
    found = problems(tmp_path, text, env={})
    assert [p.key for p in found] == [
        "sync.lookback",
        "systems.ruddr.credentials.token",
        "systems.ruddr.poll_every",
        "systems.close.type",
    ]


# --------------------------------------------------------------------------- durations, masking


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30s", 30, id="seconds"),
        pytest.param("2m", 120, id="minutes"),
        pytest.param("24h", 86400, id="hours"),
        pytest.param("1d", 86400, id="days"),
        pytest.param("1h30m", 5400, id="combined"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param(45, 45, id="bare-number"),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    """Durations are written with a unit (or as plain seconds) and read as timedeltas."""
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["soon", "30", "s", "1x", "", "-5s", "true"])
def test_bad_durations_are_rejected(text: str) -> None:
    """Anything that is not number+unit is refused (a unit is required in strings)."""
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_are_written_back_the_way_they_are_read() -> None:
    """A timedelta prints in config notation, so `config check` output can be pasted back."""
    for text in ("30s", "2m", "1d", "1h30m", "500ms"):
        assert format_duration(parse_duration(text)) == text


def test_masked_dump_hides_credentials_and_url_passwords(tmp_path: Path) -> None:
    """The resolved config shown by `config check` contains no secret from the environment."""
    env = {**ENV, "CRMSYNC_DATABASE_URL": "postgresql+psycopg://crm:hunter2@db/crm"}
    config = load_config(write(tmp_path, VALID), env=env)
    dumped = config.masked_yaml()
    assert "ruddr-secret-token" not in dumped
    assert "close-test-key" not in dumped
    assert "hunter2" not in dumped
    assert config.masked()["systems"]["ruddr"]["credentials"] == {"token": MASK}
    assert "poll_every: 30s" in dumped


def test_mask_url_keeps_host_and_user() -> None:
    """Only the secret part of a URL is masked."""
    assert (
        mask_url("postgresql+psycopg://crm:pw@db:5432/x")
        == "postgresql+psycopg://crm:***@db:5432/x"
    )
    assert mask_url("https://key:@api.close.com/api/v1") == "https://***@api.close.com/api/v1"
    assert mask_url("sqlite:///crmsync.db") == "sqlite:///crmsync.db"


def test_company_renames_default_to_keep_and_a_bad_value_names_its_line_and_key(
    tmp_path: Path,
) -> None:
    """`sync.companies.renames` is `keep` unless set, `propagate` when set; any other value is
    one error with its line and key, naming both choices."""
    assert load_config(write(tmp_path, VALID), env=ENV).sync.companies.renames == "keep"
    text = replace_line(VALID, "lookback: 2m", "lookback: 2m\n  companies: {renames: propagate}")
    assert load_config(write(tmp_path, text), env=ENV).sync.companies.renames == "propagate"
    bad = replace_line(VALID, "lookback: 2m", "lookback: 2m\n  companies: {renames: sometimes}")
    assert only(tmp_path, bad) == (
        at(tmp_path, bad, "companies:") + "sync.companies.renames: expected one of keep or "
        'propagate, got "sometimes"'
    )
