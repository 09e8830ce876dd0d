"""Fixtures shared by the emulator contract tests (one block per vendor, additive)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sync.emulators.base import Emulator
from sync.emulators.close import API_KEY as CLOSE_API_KEY
from sync.emulators.close import CloseEmulator
from sync.emulators.parsalink import DEFAULT_API_KEY as PARSALINK_API_KEY
from sync.emulators.parsalink import ParsaLinkEmulator
from sync.emulators.ruddr import DEFAULT_TOKEN as RUDDR_TOKEN
from sync.emulators.ruddr import RuddrEmulator
from sync.emulators.salesforce import TOKEN as SALESFORCE_TOKEN
from sync.emulators.salesforce import SalesforceEmulator
from sync.emulators.truto import TOKEN as TRUTO_TOKEN
from sync.emulators.truto import TrutoEmulator


# -- Close -----------------------------------------------------------------------------------
@pytest.fixture
def close_emulator() -> CloseEmulator:
    """A fresh Close emulator with reference data and 20 seeded opportunities."""
    return CloseEmulator(seed=7, seed_opportunities=20)


@pytest.fixture
def close_client(close_emulator: CloseEmulator) -> Iterator[httpx.Client]:
    """An httpx client on the Close emulator, authenticated as Close documents (key, no pw)."""
    transport = close_emulator.transport()
    with httpx.Client(
        transport=transport, base_url="http://close.test/api/v1", auth=(CLOSE_API_KEY, "")
    ) as client:
        yield client
    transport.close()


# -- any emulator ------------------------------------------------------------------------------
@pytest.fixture
def emulator_client() -> Iterator[Callable[..., httpx.Client]]:
    """A factory ``emulator_client(emulator, base_url=..., **client_kwargs) -> httpx.Client``
    on the emulator's in-process transport; every client it made is closed after the test."""
    clients: list[httpx.Client] = []

    def make(
        emulator: Emulator, base_url: str = "http://emulator.test", **kwargs: Any
    ) -> httpx.Client:
        client = httpx.Client(transport=emulator.transport(), base_url=base_url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()  # also stops the transport's event-loop thread


# -- Ruddr ---------------------------------------------------------------------------------------
@pytest.fixture
def ruddr_emulator() -> RuddrEmulator:
    """A fresh Ruddr emulator: reference data, the shared deals and 20 random opportunities."""
    return RuddrEmulator(seed=7, seed_opportunities=20)


@pytest.fixture
def ruddr_client(
    ruddr_emulator: RuddrEmulator, emulator_client: Callable[..., httpx.Client]
) -> httpx.Client:
    """An httpx client on the Ruddr emulator's workspace API with the default bearer token."""
    return emulator_client(
        ruddr_emulator,
        base_url="http://ruddr.test/api/workspace",
        headers={"Authorization": f"Bearer {RUDDR_TOKEN}"},
    )


# -- Truto -----------------------------------------------------------------------------------
@pytest.fixture
def truto_emulator() -> TrutoEmulator:
    """A fresh Truto emulator: three integrated accounts, shared deals, 20 seeded deals."""
    return TrutoEmulator(seed=3, seed_opportunities=20)


@pytest.fixture
def truto_client(truto_emulator: TrutoEmulator) -> Iterator[httpx.Client]:
    """An httpx client on the Truto emulator's ``/unified/crm`` with the default Bearer token."""
    transport = truto_emulator.transport()
    with httpx.Client(
        transport=transport,
        base_url="http://truto.test/unified/crm",
        headers={"Authorization": f"Bearer {TRUTO_TOKEN}"},
    ) as client:
        yield client
    transport.close()


# -- ParsaLink -----------------------------------------------------------------------------------
@pytest.fixture
def parsalink_emulator() -> ParsaLinkEmulator:
    """A fresh ParsaLink emulator: reference accounts and users and 30 random opportunities."""
    return ParsaLinkEmulator(seed=7, seed_opportunities=30)


@pytest.fixture
def parsalink_client(
    parsalink_emulator: ParsaLinkEmulator, emulator_client: Callable[..., httpx.Client]
) -> httpx.Client:
    """An httpx client on the ParsaLink emulator's API with the default workspace API key."""
    return emulator_client(
        parsalink_emulator,
        base_url="http://parsalink.test/api",
        headers={"Authorization": f"Bearer {PARSALINK_API_KEY}"},
    )


# -- Salesforce ----------------------------------------------------------------------------------
@pytest.fixture
def salesforce_emulator() -> SalesforceEmulator:
    """A fresh single-currency Salesforce org with reference data and 20 seeded opportunities."""
    return SalesforceEmulator(seed=7, seed_opportunities=20)


@pytest.fixture
def salesforce_client(salesforce_emulator: SalesforceEmulator) -> Iterator[httpx.Client]:
    """An httpx client on ``/services/data/v59.0`` with the fixed session token."""
    transport = salesforce_emulator.transport()
    with httpx.Client(
        transport=transport,
        base_url="http://sf.test/services/data/v59.0",
        headers={"Authorization": f"Bearer {SALESFORCE_TOKEN}"},
    ) as client:
        yield client
    transport.close()
