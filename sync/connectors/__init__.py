"""Vendor connectors: the registry of connector classes and the factory the runtime calls.

``build_connector(name, cfg)`` picks the class for ``cfg.type``, builds its auth from
``cfg.credentials`` (each class's ``make_auth``), its client from ``sync.connectors.http`` and
its rate limiter from ``cfg.rate_limit`` unless one is passed in (the runtime passes a shared
one). Built-in classes are imported lazily, so a vendor module that is missing or broken only
breaks that vendor.

Credentials keys: ruddr ``token``; close ``api_key``; parsalink ``api_key`` (``pk_…``) or
``email`` + ``password``; truto ``token`` (and ``options.integrated_account_id``);
salesforce ``client_id`` + ``client_secret`` (client credentials, optional ``token_url``) or
``token``; hubspot ``token`` (a private app's).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import httpx

from sync.connectors.base import BaseConnector
from sync.connectors.errors import ConnectorError
from sync.connectors.http import RetryPolicy, build_client
from sync.connectors.ratelimit import RateLimiter, TokenBucket

if TYPE_CHECKING:
    from sync.config import SystemConfig

#: config ``type`` -> "module:Class" of the built-in connectors, imported on first use.
BUILTIN: dict[str, str] = {
    "ruddr": "sync.connectors.ruddr:RuddrConnector",
    "parsalink": "sync.connectors.parsalink:ParsaLinkConnector",
    "close": "sync.connectors.close:CloseConnector",
    "truto": "sync.connectors.truto:TrutoConnector",
    "salesforce": "sync.connectors.salesforce:SalesforceConnector",
    "hubspot": "sync.connectors.hubspot:HubSpotConnector",
}

#: config ``type`` -> connector class, for classes registered in code (plugins, tests).
REGISTRY: dict[str, type[BaseConnector]] = {}


def register(kind: str) -> Any:
    """Class decorator: make ``kind`` (a config ``type``) build this connector class."""

    def decorate(cls: type[BaseConnector]) -> type[BaseConnector]:
        REGISTRY[kind] = cls
        return cls

    return decorate


def connector_class(kind: str) -> type[BaseConnector]:
    """The connector class for a config ``type``."""
    if kind in REGISTRY:
        return REGISTRY[kind]
    target = BUILTIN.get(kind)
    if target is None:
        raise ConnectorError(f"no connector for system type {kind!r}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConnectorError(f"the {kind} connector is not available ({module_name})") from exc
    cls: type[BaseConnector] = getattr(module, class_name)
    REGISTRY[kind] = cls
    return cls


def build_connector(
    name: str,
    cfg: SystemConfig,
    *,
    transport: httpx.BaseTransport | None = None,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
) -> BaseConnector:
    """A ready connector for system ``name`` configured by ``cfg``.

    ``transport`` replaces the network (an emulator in tests); ``limiter`` defaults to an
    in-process token bucket sized by ``cfg.rate_limit`` (no limiter when none is configured);
    ``retry`` defaults to :class:`RetryPolicy` ().
    """
    cls = connector_class(cfg.type)
    if limiter is None and cfg.rate_limit is not None:
        bucket = TokenBucket()
        bucket.configure(name, cfg.rate_limit.rate, cfg.rate_limit.burst)
        limiter = bucket
    connector: BaseConnector | None = None

    def retry_after(response: httpx.Response) -> float | None:
        # Late-bound: the connector knows its vendor's wait signal but needs the client first.
        return connector.retry_after(response) if connector is not None else None

    client = build_client(
        system=name,
        base_url=cfg.base_url,
        auth=cls.make_auth(cfg.credentials, base_url=cfg.base_url),
        timeout=cfg.timeout,
        limiter=limiter,
        retry=retry or RetryPolicy(),
        transport=transport,
        retry_after=retry_after,
    )
    connector = cls(name, client, cfg.options)
    connector.limiter = limiter
    return connector


__all__ = [
    "BUILTIN",
    "REGISTRY",
    "BaseConnector",
    "build_connector",
    "connector_class",
    "register",
]
