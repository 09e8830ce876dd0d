"""Typed configuration (first cut — the foundation work replaces the loader, keeps the names).

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
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sync.mapping.spec import MappingSpec

SystemType = Literal["ruddr", "close", "parsalink", "truto"]
DeletePolicy = Literal["propagate", "unlink", "ignore"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Strict):
    url: str = "sqlite:///crmsync.db"


class BrokerConfig(_Strict):
    url: str | None = None


class SyncConfig(_Strict):
    lookback: dt.timedelta = dt.timedelta(minutes=2)
    reconcile_every: dt.timedelta = dt.timedelta(hours=24)
    batch_size: int = 100


class PreferPolicy(_Strict):
    prefer: list[str]


Policy = Literal["latest", "manual"] | PreferPolicy


class ConflictConfig(_Strict):
    default: Policy = "latest"
    skew: dt.timedelta = dt.timedelta(seconds=5)
    priority: list[str] = Field(default_factory=list)
    fields: dict[str, Policy] = Field(default_factory=dict)


class RateLimitConfig(_Strict):
    rate: float  # requests per second
    burst: float | None = None


class SystemConfig(_Strict):
    type: SystemType
    base_url: str
    credentials: dict[str, str] = Field(default_factory=dict)
    poll_every: dt.timedelta = dt.timedelta(seconds=30)
    rate_limit: RateLimitConfig | None = None
    capture: Literal["scan", "incremental"] | None = None
    deletes: DeletePolicy = "unlink"
    create: bool = True
    auto_create_companies: bool = False
    timeout: float = 30.0
    options: dict[str, Any] = Field(default_factory=dict)


class Config(_Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    conflicts: ConflictConfig = Field(default_factory=ConflictConfig)
    systems: dict[str, SystemConfig]
    mapping: MappingSpec = Field(default_factory=dict)
