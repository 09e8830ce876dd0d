"""Typed configuration: pydantic models of config.yaml and a loader whose errors point at lines.

Shape of config.yaml::

    store:   {url: "${CRMSYNC_DATABASE_URL:-sqlite:///crmsync.db}"}
    broker:  {url: "${CRMSYNC_BROKER_URL:-}"}       # empty: embedded mode
    sync:    {lookback: 2m, reconcile_every: 24h, batch_size: 100}
    conflicts:
      default: latest            # latest | manual | {prefer: [system, ...]}
      skew: 5s                   # clock-skew tolerance for `latest`
      priority: [ruddr, close, parsalink, truto_salesforce]
      fields: {description: manual, amount: {prefer: [ruddr]}}
    systems:
      ruddr:
        type: ruddr              # ruddr | close | parsalink | truto
        base_url: ${RUDDR_BASE_URL:-http://127.0.0.1:8711/api/workspace}
        credentials: {token: "${RUDDR_TOKEN:-ruddr-test-token}"}
        poll_every: 30s
        rate_limit: {rate: 20, burst: 60}
        capture: scan            # scan | incremental (default: what the vendor supports)
        deletes: unlink          # propagate | unlink | ignore
        create: true             # may crmsync create deals in this system?
        auto_create_companies: false
        options: {}              # connector options (Truto: integrated_account_id)
    mapping: {...}               # see sync.mapping.spec

Rules the loader enforces (and the README's configuration reference repeats):

- ``${VAR}`` and ``${VAR:-default}`` are replaced from the environment in every string value;
  ``$$`` is a literal ``$``. An unset ``${VAR}`` without a default is an error.
- Everything under a system's ``credentials`` must come from the environment: each value is one
  whole ``${VAR}`` or ``${VAR:-default}`` — a literal, or literal text around a reference, is an
  error (the fallback is allowed so the shipped file works against the local emulators out of
  the box). Each connector type takes its own keys (:data:`CREDENTIAL_KEYS`).
- ``CRMSYNC_DATABASE_URL`` overrides ``store.url`` and ``CRMSYNC_BROKER_URL`` ``broker.url``.
- Unknown keys are rejected, and so are unknown names where names are expected (canonical
  fields under ``conflicts.fields``, systems in ``priority`` / ``prefer`` — each once — and
  canonical stages, see :func:`sync.mapping.spec.stage_vocabulary_problems`).
- Durations are written ``500ms``, ``30s``, ``2m``, ``24h``, ``1d`` or combined (``1h30m``),
  from ``0s`` to ``365d``; ``poll_every`` is at least ``1s``, ``reconcile_every`` ``0s`` (off)
  or at least ``1m``.
- YAML aliases may add at most ``MAX_ALIAS_VALUES`` values (``sync.config.reader``).
- Secrets never appear in :meth:`Config.masked_yaml` nor in a problem: credentials, URL
  passwords and secret-looking query parameters, and options whose key looks like a secret.
- Every problem is reported at once, each as
  ``config.yaml:14 systems.close.poll_every: expected a duration like "30s", got "soon"``.

Layout: ``reader`` (YAML to plain data with the line of every key, ``${VAR}``, literal secrets
refused, and :class:`ConfigProblem` / :class:`ConfigError`), ``values`` (durations, URLs),
``models`` (the pydantic models), ``masking`` (secrets hidden in what is shown), ``problems``
(validation errors as problems naming the line and key), ``checks`` (rules across sections),
``loader`` (``load_config`` / ``parse_config``). Callers import from ``sync.config``.
"""

from __future__ import annotations

from sync.config.loader import (
    BROKER_URL_ENV,
    CONFIG_ENV,
    DATABASE_URL_ENV,
    DEFAULT_PATH,
    load_config,
    parse_config,
)
from sync.config.masking import MASK, mask_url
from sync.config.models import (
    Config,
    DeleteGuardConfig,
    PreferPolicy,
    RateLimitConfig,
    SystemConfig,
)
from sync.config.reader import ConfigError, ConfigProblem, format_key_path
from sync.config.values import format_duration, parse_duration

__all__ = [
    "BROKER_URL_ENV",
    "CONFIG_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_PATH",
    "MASK",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DeleteGuardConfig",
    "PreferPolicy",
    "RateLimitConfig",
    "SystemConfig",
    "format_duration",
    "format_key_path",
    "load_config",
    "mask_url",
    "parse_config",
    "parse_duration",
]
