"""Every configuration mistake a user (or an attacker) can make, fed to `crmsync config check`:
each is one line `file:line key: expected …, got …`, exit 1, and no secret of the file or the
environment is ever printed."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.config import ConfigError, parse_config

pytestmark = pytest.mark.usefixtures("restore_logging")

SHIPPED = (Path(__file__).resolve().parents[2] / "config.yaml").read_text(encoding="utf-8")

#: secrets the environment holds: none may ever be printed
ENV = {
    "RUDDR_TOKEN": "ENV_SECRET_RUDDR_1",
    "CLOSE_API_KEY": "ENV_SECRET_CLOSE_2",
    "PARSALINK_API_KEY": "ENV_SECRET_PARSALINK_3",
    "TRUTO_TOKEN": "ENV_SECRET_TRUTO_4",
    "CRMSYNC_LOG_FORMAT": "json",
}
#: secrets written into the files below: none may be printed either
FILE_SECRETS = ("SUPERSECRET999", "LEAKY_OPTION_SECRET", "hunter2", "LITERAL_TOKEN_77")


@dataclass(frozen=True)
class Mistake:
    old: str  # a line (or part) of the shipped config.yaml
    new: str  # what the mistake makes of it
    line_of: str  # text on the line the error must point at (in the changed file)
    key: str  # the key path the error names
    message: str  # a part of "expected …, got …"
    nth: int = 1  # which occurrence of `old` to change


MISTAKES: dict[str, Mistake] = {
    # ----- found accepted by the adversarial trial (issue 13)
    "unknown-conflict-field": Mistake(
        "    amount: {prefer: [ruddr, truto_salesforce, salesforce]}",
        "    amountz: manual",
        "amountz: manual",
        "conflicts.fields.amountz",
        'expected "amount" (canonical fields: name, description, amount',
    ),
    "unknown-credentials-key": Mistake(
        "      token: ${RUDDR_TOKEN:-ruddr-test-token}",
        "      tokne: ${RUDDR_TOKEN:-ruddr-test-token}",
        "tokne:",
        "systems.ruddr.credentials.tokne",
        'expected "token" (ruddr credentials: token), got unknown key "tokne"',
    ),
    "close-credentials-key": Mistake(
        "      api_key: ${CLOSE_API_KEY:-close-test-key}",
        "      token: ${CLOSE_API_KEY:-close-test-key}",
        "token: ${CLOSE_API_KEY",
        "systems.close.credentials.token",
        'expected one of api_key, got unknown key "token"',
    ),
    "truto-credentials-key": Mistake(
        "      token: ${TRUTO_TOKEN:-truto-test-token}",
        "      api_key: ${TRUTO_TOKEN:-truto-test-token}",
        "api_key: ${TRUTO_TOKEN",
        "systems.truto_salesforce.credentials.api_key",
        'expected one of token, got unknown key "api_key"',
    ),
    "parsalink-credentials-key": Mistake(
        "      api_key: ${PARSALINK_API_KEY:-pk_test_parsalink}",
        "      apikey: ${PARSALINK_API_KEY:-pk_test_parsalink}",
        "apikey:",
        "systems.parsalink.credentials.apikey",
        'expected "api_key" (parsalink credentials: api_key, email, password)',
    ),
    "system-twice-in-priority": Mistake(
        "  priority: [ruddr, close, parsalink, truto_salesforce, salesforce]",
        "  priority: [ruddr, close, ruddr, truto_salesforce, salesforce]",
        "priority: [ruddr, close, ruddr",
        "conflicts.priority[2]",
        'expected each system once, got "ruddr" again (first at [0])',
    ),
    "system-twice-in-prefer": Mistake(
        "    amount: {prefer: [ruddr, truto_salesforce, salesforce]}",
        "    amount: {prefer: [close, close]}",
        "prefer: [close, close]",
        "conflicts.fields.amount.prefer[1]",
        'expected each system once, got "close" again',
    ),
    "stage-missing-from-the-vocabulary": Mistake(
        "        Prospecting: prospecting\n",
        "        Prospecting: prospectin\n",
        "Prospecting: prospectin",
        "mapping.ruddr.stage.values.Prospecting",
        'maps: "prospecting" (canonical stages: lost, negotiation, proposal, prospecting, '
        'qualification, won), got "prospectin", which close, parsalink, truto_salesforce, '
        "salesforce, hubspot cannot write",
    ),
    "stage-typo-in-a-later-system": Mistake(
        "        Prospecting: prospecting\n",
        "        Prospecting: prospectin\n",
        "Prospecting: prospectin",
        "mapping.close.stage.values.Prospecting",
        'got "prospectin", which ruddr, parsalink, truto_salesforce, salesforce, hubspot '
        "cannot write",
        nth=2,
    ),
    "stage-only-one-system-knows": Mistake(
        "        Closed Won: won\n",
        "        Closed Won: won\n        Discovery: discovery\n",
        "Discovery: discovery",
        "mapping.ruddr.stage.values.Discovery",
        'got "discovery", which close, parsalink, truto_salesforce, salesforce, hubspot '
        "cannot write",
    ),
    "poll-every-zero": Mistake(
        "    poll_every: 60s",
        "    poll_every: 0s",
        "poll_every: 0s",
        "systems.parsalink.poll_every",
        'expected a duration of at least 1s, got "0s"',
    ),
    "reconcile-every-seconds": Mistake(
        "  reconcile_every: 24h",
        "  reconcile_every: 5s",
        "reconcile_every: 5s",
        "sync.reconcile_every",
        'expected 0s (off) or a duration of at least 1m, got "5s"',
    ),
    "negative-skew": Mistake(
        "  skew: 5s",
        "  skew: -5",
        "skew: -5",
        "conflicts.skew",
        "expected a duration that is not negative, got -5",
    ),
    "duration-overflow": Mistake(
        "  reconcile_every: 24h",
        "  reconcile_every: 99999999999w",
        "reconcile_every: 99999999999w",
        "sync.reconcile_every",
        'expected a duration of at most 365d, got "99999999999w"',
    ),
    "duration-infinite": Mistake(
        "  lookback: 2m",
        "  lookback: .inf",
        "lookback: .inf",
        "sync.lookback",
        "expected a duration of at most 365d, got inf",
    ),
    "path-with-an-empty-segment": Mistake(
        "    amount: amount                         # float, major units",
        "    amount: amount..x",
        "amount: amount..x",
        "mapping.ruddr.amount",
        'expected a vendor path of non-empty keys joined by dots (like "stage.id"), '
        'got "amount..x"',
    ),
    "path-with-a-leading-dot": Mistake(
        "    next_steps: remote_data.NextStep",
        "    next_steps: .remote_data.NextStep",
        "next_steps: .remote_data",
        "mapping.truto_salesforce.next_steps",
        'got ".remote_data.NextStep"',
    ),
    "write-path-with-a-trailing-dot": Mistake(
        "      write: opportunityStageId",
        "      write: opportunityStageId.",
        "write: opportunityStageId.",
        "mapping.ruddr.stage.write",
        'expected a vendor path of non-empty keys joined by dots (like "stage.id"), '
        'got "opportunityStageId."',
    ),
    "filter-path-with-an-empty-segment": Mistake(
        "    # filter:                              # e.g. leave inactive",
        "    filter: [{path: 'is..Active', in: [true]}]\n    # e.g. leave inactive",
        "filter: [{path: 'is..Active'",
        "mapping.ruddr.filter[0].path",
        'got "is..Active"',
    ),
    "literal-secret-around-an-interpolation": Mistake(
        "      api_key: ${CLOSE_API_KEY:-close-test-key}",
        "      api_key: Bearer-${CLOSE_API_KEY:-x}-SUPERSECRET999",
        "api_key: Bearer-",
        "systems.close.credentials.api_key",
        "expected only an environment variable reference like ${CLOSE_API_KEY}, "
        "got literal text around it (a literal secret)",
    ),
    "huge-batch-size": Mistake(
        "  batch_size: 100",
        "  batch_size: 99999999999999999999999999",
        "batch_size: 9999",
        "sync.batch_size",
        "expected a number at most 10000, got 99999999999999999999999999",
    ),
    "explicit-tag-that-does-not-fit": Mistake(
        "  batch_size: 100",
        "  batch_size: !!int abc",
        "batch_size: !!int abc",
        "sync.batch_size",
        "expected a value safe YAML can read, got tag:yaml.org,2002:int 'abc'",
    ),
    "unsafe-python-tag": Mistake(
        "  batch_size: 100",
        "  batch_size: !!python/name:os.system x",
        "batch_size: !!python",
        "sync.batch_size",
        "could not determine a constructor for the tag",
    ),
    "tagged-secret-option": Mistake(
        "      remote_data: true                    # the mapping reads",
        "      api_key: !!int SUPERSECRET999\n      # the mapping reads",
        "api_key: !!int",
        "systems.truto_salesforce.options.api_key",
        "expected a value safe YAML can read, got a value (not shown: it may be a secret)",
    ),
    # ----- already handled before issue 13 (kept here so the table covers every kind)
    "literal-secret": Mistake(
        "      token: ${TRUTO_TOKEN:-truto-test-token}",
        "      token: LITERAL_TOKEN_77",
        "token: LITERAL_TOKEN_77",
        "systems.truto_salesforce.credentials.token",
        "expected an environment variable reference like ${TRUTO_SALESFORCE_TOKEN}, "
        "got a literal secret",
    ),
    "bad-duration": Mistake(
        "    poll_every: 60s",
        "    poll_every: soon",
        "poll_every: soon",
        "systems.parsalink.poll_every",
        'expected a duration like "30s", "2m", "24h" or "1d", got "soon"',
    ),
    "unknown-key": Mistake(
        "    capture: scan                          # no modified-since",
        "    captur: scan",
        "captur: scan",
        "systems.ruddr.captur",
        'expected "capture" (known keys:',
    ),
    "unknown-system-type": Mistake(
        "    type: parsalink",
        "    type: pipedrive",
        "type: pipedrive",
        "systems.parsalink.type",
        'expected one of ruddr, close, parsalink, truto, salesforce or hubspot, got "pipedrive"',
    ),
    "unknown-system-in-priority": Mistake(
        "  priority: [ruddr, close, parsalink, truto_salesforce, salesforce]",
        "  priority: [ruddr, pipedrive]",
        "priority: [ruddr, pipedrive]",
        "conflicts.priority[1]",
        'got "pipedrive"',
    ),
    "bad-policy": Mistake(
        "  default: latest",
        "  default: newest",
        "default: newest",
        "conflicts.default",
        'expected "latest", "manual" or {prefer: [system, ...]}',
    ),
    "bad-base-url-with-a-password": Mistake(
        "    base_url: ${TRUTO_BASE_URL:-http://127.0.0.1:8714/unified/crm}",
        "    base_url: ftp://admin:hunter2@truto.example/unified",
        "base_url: ftp://",
        "systems.truto_salesforce.base_url",
        'got "ftp://admin:***@truto.example/unified"',
    ),
    "unknown-transform": Mistake(
        "    amount: {path: value, transform: cents}",
        "    amount: {path: value, transform: pennies}",
        "transform: pennies",
        "mapping.close.amount.transform",
        "expected one of",
    ),
    "unknown-canonical-field-in-mapping": Mistake(
        "    next_steps: nextSteps",
        "    next_step: nextSteps",
        "next_step: nextSteps",
        "mapping.ruddr.next_step",
        'expected "next_steps"',
    ),
    "non-canonical-status": Mistake(
        "    status: {read: opportunityStage.statusId, direction: inbound,\n"
        "             values: {open: open, won: won, lost: lost}}",
        "    status: {read: opportunityStage.statusId, direction: inbound,\n"
        "             values: {open: open, won: won, lost: lots}}",
        "status: {read: opportunityStage.statusId",
        "mapping.ruddr.status",
        "(status: expected one of open, won, lost, got 'lots')",
    ),
    "mapping-for-an-unknown-system": Mistake(
        "  parsalink:\n    name: name",
        "  parsalnk:\n    name: name",
        "  parsalnk:",
        "mapping.parsalnk",
        "expected a system named under systems",
    ),
    "bad-rate-limit": Mistake(
        "    rate_limit: {rate: 1.5, burst: 10}",
        "    rate_limit: {rate: 0, burst: 10}",
        "rate: 0",
        "systems.parsalink.rate_limit.rate",
        "expected a number greater than 0, got 0",
    ),
    "invalid-yaml": Mistake(
        "  skew: 5s",
        "  skew: 5s: 6s",
        "skew: 5s: 6s",
        "",
        "expected valid YAML, got mapping values are not allowed here",
    ),
}


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(path)], env=ENV)
    return result.exit_code, result.stdout + result.stderr


def assert_no_secret(output: str) -> None:
    for secret in (*FILE_SECRETS, *(v for k, v in ENV.items() if "SECRET" in v)):
        assert secret not in output


def changed_at(text: str, mistake: Mistake) -> int:
    """Where the ``nth`` occurrence of ``mistake.old`` starts in ``text``."""
    start = -1
    for _ in range(mistake.nth):
        start = text.index(mistake.old, start + 1)
    return start


def apply(text: str, mistake: Mistake) -> str:
    start = changed_at(text, mistake)
    return text[:start] + mistake.new + text[start + len(mistake.old) :]


@pytest.mark.parametrize("name", list(MISTAKES))
def test_config_check_names_the_line_the_key_and_the_mistake(tmp_path: Path, name: str) -> None:
    """Each mistake is reported by `config check` as `file:line key: expected …, got …` on the
    line of the mistake, exit 1, no traceback, and no secret of the file or the environment."""
    mistake = MISTAKES[name]
    assert mistake.old in SHIPPED, mistake.old
    text = apply(SHIPPED, mistake)
    code, output = check(tmp_path, text)
    assert code == 1, output
    assert "Traceback" not in output
    line = text[: text.index(mistake.line_of, changed_at(SHIPPED, mistake))].count("\n") + 1
    where = f"{tmp_path / 'config.yaml'}:{line}"
    expected_start = f"{where} {mistake.key}: " if mistake.key else f"{where}: "
    lines = [row.strip() for row in output.splitlines()]
    found = [row for row in lines if row.startswith(expected_start)]
    assert found, output
    assert mistake.message in found[0], found[0]
    assert_no_secret(output)


def test_the_shipped_config_is_valid_and_prints_no_secret(tmp_path: Path) -> None:
    """The table above starts from a valid file: the shipped config passes, secrets masked."""
    code, output = check(tmp_path, SHIPPED)
    assert code == 0, output
    assert_no_secret(output)


def test_secret_looking_connector_options_are_masked(tmp_path: Path) -> None:
    """Connector options are free-form, so `config check` masks every option whose key looks
    like a secret (key, token, secret, password…), nested ones too, and URL passwords in any
    option or query string — the rest of the options are shown as they are."""
    text = SHIPPED.replace(
        "      remote_data: true",
        "      remote_data: true\n"
        "      api_key: LEAKY_OPTION_SECRET\n"
        "      webhook: {signing_secret: SUPERSECRET999, url: 'https://u:hunter2@hooks.x/y'}\n"
        "      callback: https://hooks.x/cb?token=LITERAL_TOKEN_77&mode=fast",
    )
    code, output = check(tmp_path, text)
    assert code == 0, output
    assert_no_secret(output)
    assert "api_key: '***'" in output
    assert "mode=fast" in output
    assert "remote_data: true" in output


def test_an_alias_bomb_fails_fast_at_its_line(tmp_path: Path) -> None:
    """A "billion laughs" file is refused while it is parsed, before any alias is expanded:
    one problem at the line of the alias that goes over the limit, within a second or two and
    without growing memory (it used to grow to 1.8 GB and die of MemoryError)."""
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    text = "\n".join(levels) + "\n"
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(ConfigError):
        parse_config(text, env={})
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2
    assert peak < 20 * 2**20  # bytes: 20 MiB at most (a file of 1 kB)
    code, output = check(tmp_path, text)
    assert code == 1
    where = f"{tmp_path / 'config.yaml'}:5: "  # *d: 9*9*9*9 values, the first past 10,000
    assert f"{where}expected at most 10000 values added by aliases (*name), got *d" in output


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    """A recursive alias (`a: &a [*a]`) is one clear problem, not a RecursionError."""
    code, output = check(tmp_path, "sync: &s {lookback: 2m, more: [*s]}\n")
    assert code == 1
    assert "config.yaml:1: expected no alias inside its own anchor, got *s inside &s" in output
