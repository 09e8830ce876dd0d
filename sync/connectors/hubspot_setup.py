"""What ``crmsync doctor`` checks of a HubSpot setup, without writing anything: the private
app's scopes (``POST /oauth/v2/private-apps/get/access-token-info``), the deal property that
holds crmsync's id (``GET /crm/v3/properties/deals/{name}``: it must exist and require unique
values), the portal the token belongs to against ``options.portal_id``, and a portal with
additional currencies under a ``fixed`` currency model.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from sync.connectors.base import SetupFinding
from sync.connectors.errors import NotFound
from sync.connectors.http import BearerAuth

#: what crmsync needs of a private app's token
REQUIRED_SCOPES = (
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.companies.read",
    "crm.objects.owners.read",
)


class TokenAuth(BearerAuth):
    """Bearer auth that keeps its token: HubSpot's token-info endpoint takes it in the body."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


class Target(Protocol):
    """What the checks need of the connector (``sync.connectors.hubspot``)."""

    system: str
    client: httpx.Client
    options: dict[str, Any]

    @property
    def id_property(self) -> str: ...
    def portal(self) -> dict[str, Any]: ...
    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def request_json(
        self, method: str, url: str, body: dict[str, Any], *, read: bool = False
    ) -> dict[str, Any]: ...


def findings(self: Target) -> list[SetupFinding]:
    """The token's scopes, crmsync's id property, the portal and its currencies."""
    return [*_scope_findings(self), _id_property_finding(self), *_portal_findings(self)]


def _scope_findings(self: Target) -> list[SetupFinding]:
    token = getattr(self.client.auth, "token", None)
    if not token:
        return []
    info = self.request_json(
        "POST", "/oauth/v2/private-apps/get/access-token-info", {"tokenKey": token}, read=True
    )
    missing = sorted(set(REQUIRED_SCOPES) - set(info.get("scopes") or []))
    if missing:
        fix = "HubSpot → Settings → Integrations → Private Apps → your app → Scopes: add " + (
            ", ".join(missing)
        )
        return [SetupFinding("problem", "scopes", f"the token lacks {', '.join(missing)}", fix)]
    return [SetupFinding("ok", "scopes", "the token has every scope crmsync needs")]


def _id_property_finding(self: Target) -> SetupFinding:
    name = self.id_property
    fix = (
        f"HubSpot → Settings → Properties → Deal properties → Create property: internal "
        f"name {name}, single-line text, 'Require unique values' on (or set "
        f"options.id_property to the one you have)"
    )
    try:
        prop = self.get_json(f"/crm/v3/properties/deals/{name}")
    except NotFound:
        return SetupFinding("problem", "id property", f"deals have no property {name}", fix)
    if not prop.get("hasUniqueValue"):
        return SetupFinding("problem", "id property", f"{name} does not require unique values", fix)
    return SetupFinding("ok", "id property", f"{name} holds crmsync's id (unique values)")


def _portal_findings(self: Target) -> list[SetupFinding]:
    portal = self.portal()
    found = str(portal.get("portalId") or "")
    bound = str(self.options.get("portal_id") or "")
    findings = []
    if bound and bound != found:
        findings.append(
            SetupFinding(
                "problem",
                "portal",
                f"the token belongs to portal {found}, the config is bound to {bound}",
                f"use portal {bound}'s token, or `crmsync rebind {self.system}` to move",
            )
        )
    else:
        fix = "" if bound else f"set options.portal_id: {found} to bind the system to it"
        findings.append(SetupFinding("ok", "portal", f"portal {found}", fix))
    extra = portal.get("additionalCurrencies") or []
    if extra:
        findings.append(
            SetupFinding(
                "ok",
                "currency",
                f"the portal holds {portal.get('companyCurrency')} and {', '.join(extra)}: "
                "deals keep their own currency (deal_currency_code) unless "
                f"systems.{self.system}.currency.mode says otherwise",
            )
        )
    return findings
