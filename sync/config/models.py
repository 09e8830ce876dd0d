"""The pydantic models of config.yaml, section by section (store, broker, sync, conflicts,
systems, mapping, currency_rates), with their defaults; ``Config`` is the whole file and
shows itself with secrets masked. Unknown keys are refused everywhere (``_Strict``), which is
what lets ``problems`` suggest the key that was meant."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from sync.config.masking import MASK, mask_secrets, mask_url
from sync.config.values import (
    BrokerUrl,
    DatabaseUrl,
    Duration,
    HttpUrl,
    PollInterval,
    ReconcileInterval,
)
from sync.mapping.spec import MappingSpec
from sync.money_config import CurrencyConfig, RatesConfig

SystemType = Literal["ruddr", "close", "parsalink", "truto", "salesforce", "hubspot"]
DeletePolicy = Literal["propagate", "unlink", "ignore"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Strict):
    url: DatabaseUrl = "sqlite:///crmsync.db"


class BrokerConfig(_Strict):
    url: BrokerUrl = None


MatchField = Literal["name", "company", "owner", "stage", "close_date", "amount", "currency"]


def _name_and_company() -> list[MatchField]:
    return ["name", "company"]


class MatchConfig(_Strict):
    """How a guided first run matches deals that already exist in several systems (no id in
    common): ``fields`` must agree once normalised (case, whitespace, punctuation, company
    suffixes); ``tie_breakers`` split a group that holds two deals of one system."""

    fields: list[MatchField] = Field(default_factory=_name_and_company, min_length=1)
    tie_breakers: list[MatchField] = Field(default_factory=list)
    #: name similarity (0..1) above which two unmatched deals are reported as a near-miss
    near_miss: float = Field(default=0.85, gt=0, le=1)


def _share(value: object) -> object:
    """``10%`` or ``0.1``: a share of a system's deals."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise PydanticCustomError("share", 'a share like "10%" or 0.1') from None
    return value


Share = Annotated[float, BeforeValidator(_share), Field(ge=0, le=1)]


class DeleteGuardConfig(_Strict):
    """The mass-delete guard: one capture that would delete or unlink more than ``max_share``
    of a system's linked deals, or more than ``max_count``, holds the system until an operator
    confirms or discards (``crmsync deletes``). Fewer than ``min_count`` never trip it (a small
    system losing 1 of 5 deals is an ordinary delete, not a broken account)."""

    max_share: Share = 0.10
    max_count: int = Field(default=50, ge=0)
    min_count: int = Field(default=3, ge=1)
    enabled: bool = True


class CompaniesConfig(_Strict):
    """Linked companies (DESIGN §2.6). ``renames``: keep — a company renamed in one system keeps
    its own name in the others (listed by ``verify`` and ``doctor``, never drift); propagate —
    the new name is written to its linked company in every other system that allows it."""

    renames: Literal["keep", "propagate"] = "keep"


class SyncConfig(_Strict):
    lookback: Duration = dt.timedelta(minutes=2)
    reconcile_every: ReconcileInterval = dt.timedelta(hours=24)
    batch_size: int = Field(default=100, gt=0, le=10_000)
    # canonical fields that identify a deal when no external id does (e.g. [name, company]),
    # compared exactly, at every capture; ``match`` is the normalised rule of the first run
    natural_key: list[str] = Field(default_factory=list)
    match: MatchConfig = Field(default_factory=MatchConfig)
    #: guided: creates wait for ``crmsync match --approve`` when two or more systems already
    #: held deals at their first read; automatic: the proposed matches are applied unattended;
    #: waive: no first-run matching (creates start once every system was read)
    first_run: Literal["guided", "automatic", "waive"] = "guided"
    #: default for every system; ``systems.NAME.delete_guard`` overrides it
    delete_guard: DeleteGuardConfig = Field(default_factory=DeleteGuardConfig)
    companies: CompaniesConfig = Field(default_factory=CompaniesConfig)


class PreferPolicy(_Strict):
    prefer: list[str] = Field(min_length=1)


_POLICY_EXPECTED = '"latest", "manual" or {prefer: [system, ...]}'


def _one_policy_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A union reports one error per member; people want one sentence about the field.
    try:
        return handler(value)
    except ValidationError as exc:
        raise PydanticCustomError("policy", _POLICY_EXPECTED) from exc


Policy = Annotated[Literal["latest", "manual"] | PreferPolicy, WrapValidator(_one_policy_error)]


class ConflictConfig(_Strict):
    default: Policy = "latest"
    skew: Duration = dt.timedelta(seconds=5)
    priority: list[str] = Field(default_factory=list)
    fields: dict[str, Policy] = Field(default_factory=dict)


class RateLimitConfig(_Strict):
    rate: float = Field(gt=0)  # requests per second
    burst: float | None = Field(default=None, gt=0)


class SystemConfig(_Strict):
    type: SystemType
    base_url: HttpUrl
    credentials: dict[str, str] = Field(default_factory=dict)
    poll_every: PollInterval = dt.timedelta(seconds=30)
    rate_limit: RateLimitConfig | None = None
    capture: Literal["scan", "incremental"] | None = None
    deletes: DeletePolicy = "unlink"
    create: bool = True
    auto_create_companies: bool = False
    #: what a reference with no counterpart here is written as meanwhile, by kind: e.g.
    #: ``{owner: sales-ops@acme.com}`` (default: the field keeps this system's current value)
    fallback: dict[Literal["owner", "company", "stage"], str] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    #: pushes in flight at once to this system (each waits on the vendor; the rate limit
    #: still bounds requests per second)
    concurrency: int = Field(default=8, gt=0, le=64)
    #: the share of the system's allowance per poll (``rate_limit.rate`` × ``poll_every``)
    #: that rechecks of unconfirmed summaries (ParsaLink) may spend, less the pushes owed
    recheck_share: float = Field(default=0.25, ge=0, le=1)
    #: a scan system's full listings may use this share of its rate limit on average: its poll
    #: interval stretches when they need more (``sync.engine.pace``); pushes keep the rest
    scan_share: float = Field(default=0.5, gt=0, le=1)
    options: dict[str, Any] = Field(default_factory=dict)
    #: how the system holds currencies (sync.money_config; defaults per vendor type)
    currency: CurrencyConfig = Field(default_factory=CurrencyConfig)
    delete_guard: DeleteGuardConfig | None = None  # default: sync.delete_guard


class Config(_Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    conflicts: ConflictConfig = Field(default_factory=ConflictConfig)
    systems: dict[str, SystemConfig]
    mapping: MappingSpec = Field(default_factory=dict)
    #: the rates ``currency.foreign: convert`` uses (sync.money_config.RatesConfig)
    currency_rates: RatesConfig | None = None

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as plain data: credentials, URL passwords and connector
        options whose key looks like a secret masked."""
        data = self.model_dump(mode="json", by_alias=True)
        for system in data["systems"].values():
            system["credentials"] = {key: MASK for key in system["credentials"]}
            system["base_url"] = mask_url(system["base_url"])
            system["options"] = mask_secrets(system["options"])
        # Mappings are long; only what differs from the defaults says anything.
        data["mapping"] = {
            name: spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for name, spec in self.mapping.items()
        }
        data["store"]["url"] = mask_url(data["store"]["url"])
        if data["broker"]["url"]:
            data["broker"]["url"] = mask_url(data["broker"]["url"])
        return data

    def masked_yaml(self) -> str:
        """:meth:`masked` as YAML, in the file's key order (for ``crmsync config check``)."""
        return yaml.safe_dump(self.masked(), sort_keys=False, allow_unicode=True)
