"""``crmsync doctor`` for a Salesforce system connected directly: the checks only it needs.

- the External ID field ``Crmsync_Id__c`` exists and is flagged External ID (creates are
  upserts on it) — else how to create it;
- the run-as user may create, edit and delete opportunities (the describe says);
- the org: the one the credentials reach is the one ``options.org_id`` names, and no other
  configured system (direct, or Truto-Salesforce with its ``org_id`` option) is bound to the
  same org — two systems on one org would see every deal twice;
- the daily API allocation: how much is used, and the reserve kept for other tools.
"""

from __future__ import annotations

from typing import Any, Protocol

from sync.connectors.base import BaseConnector
from sync.connectors.errors import ConnectorError
from sync.engine.context import Engine
from sync.engine.orgs import org_of

EXTERNAL_ID = "Crmsync_Id__c"
HOW_TO_CREATE = (
    "in Salesforce: Setup → Object Manager → Opportunity → Fields & Relationships → New → "
    "Text (255), Field Name Crmsync_Id (API name Crmsync_Id__c), tick 'External ID'; give the "
    "integration user's profile read/edit access to it"
)


class Report(Protocol):
    system: str

    def add(self, level: Any, check: str, what: str, fix: str = "") -> None: ...


def check(engine: Engine, connector: BaseConnector, report: Report) -> None:
    """The Salesforce findings of one system (reads only)."""
    try:
        describe = connector._request("GET", f"{connector.api}/sobjects/Opportunity/describe")  # type: ignore[attr-defined]
        _fields(describe.json(), report)
        _org(engine, connector, report)
    except ConnectorError as exc:
        report.add("problem", "org", f"cannot read the org's setup: {exc}")
        return
    _allocation(connector, report)


def _fields(describe: dict[str, Any], report: Report) -> None:
    for verb in ("createable", "updateable", "deletable"):
        if not describe.get(verb):
            report.add(
                "problem",
                "write",
                f"the integration user may not {verb.removesuffix('able')} opportunities",
                "give its profile or a permission set Create, Edit and Delete on Opportunity",
            )
    fields = {f["name"]: f for f in describe.get("fields") or []}
    field = fields.get(EXTERNAL_ID)
    if field is None:
        report.add("problem", "custom fields", f"{EXTERNAL_ID} does not exist", HOW_TO_CREATE)
    elif not field.get("externalId"):
        report.add(
            "problem",
            "custom fields",
            f"{EXTERNAL_ID} exists but is not flagged External ID: creates cannot be upserts",
            "edit the field in Setup and tick 'External ID'",
        )
    else:
        report.add("ok", "custom fields", f"{EXTERNAL_ID} is an External ID field")


def _org(engine: Engine, connector: BaseConnector, report: Report) -> None:
    org = str(connector.org_id() or "")  # type: ignore[attr-defined]
    wanted = str(connector.options.get("org_id") or "")
    if wanted and wanted != org:
        report.add(
            "problem",
            "org",
            f"the credentials reach org {org}, but options.org_id names {wanted}",
            "point base_url and the credentials at the org in options.org_id, or run "
            f"`crmsync rebind {report.system}` if the system really moved",
        )
        return
    twins = [
        name for name in engine.systems if name != report.system and org_of(engine, name) == org
    ]
    if twins:
        report.add(
            "problem",
            "org",
            f"org {org} is also synced as {', '.join(twins)}: every deal would be seen twice",
            "keep one of them: Salesforce direct or through Truto, never both for one org",
        )
        return
    fix = "" if wanted else f"set systems.{report.system}.options.org_id: {org} to bind it"
    report.add("ok", "org", f"org {org}", fix)


def _allocation(connector: BaseConnector, report: Report) -> None:
    usage = getattr(connector, "api_usage", None)
    if usage is None:
        return
    used, allocation = usage
    reserve = float(connector.options.get("api_reserve", 0.2))
    report.add(
        "ok",
        "rate",
        f"daily API allocation: {used:,} of {allocation:,} used; crmsync pauses at "
        f"{allocation * (1 - reserve):,.0f} (options.api_reserve {reserve:.0%})",
    )
