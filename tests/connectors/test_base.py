"""The connector contract: abstract operations are enforced, references can be forgotten."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.connectors import connector_class
from sync.connectors.base import BaseConnector, Reference
from sync.connectors.ruddr import RuddrConnector


def test_a_connector_missing_an_operation_cannot_be_built() -> None:
    """A subclass that leaves an abstract operation out is refused (and mypy flags it)."""

    class Half(BaseConnector):
        vendor = "half"

    with pytest.raises(TypeError, match="abstract"):
        Half("half", httpx.Client())  # type: ignore[abstract]


@pytest.mark.parametrize("vendor", ["ruddr", "parsalink", "close", "truto"])
def test_every_shipped_connector_implements_the_contract(vendor: str) -> None:
    """No shipped connector leaves an abstract operation out."""
    assert not getattr(connector_class(vendor), "__abstractmethods__", frozenset())


def test_forget_references_drops_one_kind_or_all() -> None:
    """``forget_references(kind)`` re-lists that kind next time; with no kind, every kind."""
    listed: list[str] = []

    class Listing(RuddrConnector):
        def load_references(self, kind: str) -> Iterator[Reference]:
            listed.append(kind)
            yield Reference("company", "1", "Acme")

    connector = Listing("ruddr", httpx.Client())
    connector.references("company"), connector.references("owner")
    connector.references("company")
    assert listed == ["company", "owner"]
    connector.forget_references("company")
    connector.references("company"), connector.references("owner")
    assert listed == ["company", "owner", "company"]
    connector.forget_references()
    connector.references("owner")
    assert listed == ["company", "owner", "company", "owner"]
