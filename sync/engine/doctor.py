"""``crmsync doctor``: a live check of every configured system before the first run.

Per system, each finding with the fix: credentials valid; opportunities readable (and what
the API can say about writing them); the custom fields the mapping reads or writes exist
(Close: ``custom.cf_…``); every stage the vendor has is in the mapping's ``values`` and every
canonical stage another system uses can be written here; owners (by e-mail) and companies
(by normalised name) found in the other systems they are sent to; the rate limit the vendor
reports. Reads only: nothing is written anywhere. The checks across systems (stages, owners,
companies) are in :mod:`sync.engine.doctor_refs`, Salesforce's own in ``doctor_salesforce``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from sync.connectors.base import BaseConnector, Reference, SetupFinding
from sync.connectors.errors import AuthFailed, ConnectorError, NotFound
from sync.connectors.http.stats import budget_from_headers
from sync.engine import budget, companies, doctor_refs, doctor_salesforce, pace
from sync.engine.context import Engine
from sync.mapping.spec import FieldSpec

Level = Literal["ok", "warn", "problem"]
#: where each vendor's credential comes from, and the variable the shipped config.yaml reads
CREDENTIALS: dict[str, tuple[str, str]] = {
    "ruddr": ("RUDDR_TOKEN", "Ruddr → Settings → API Keys (workspace admin; full read/write)"),
    "close": ("CLOSE_API_KEY", "Close → Settings → Developer → API Keys (the key acts as you)"),
    "parsalink": ("PARSALINK_API_KEY", "ParsaLink → Settings → API Keys (pk_live_…, shown once)"),
    "truto": ("TRUTO_TOKEN", "Truto dashboard → API tokens (environment-scoped)"),
    "salesforce": (
        "SALESFORCE_CLIENT_SECRET",
        "Salesforce Setup → App Manager → your connected app (client credentials flow)",
    ),
    "hubspot": (
        "HUBSPOT_TOKEN",
        "HubSpot → Settings → Integrations → Private Apps (scopes crm.objects.deals.read/write)",
    ),
}
#: one cheap listing per vendor: proves the credential and read access, carries rate headers
PROBES: dict[str, tuple[str, dict[str, str]]] = {
    "ruddr": ("/opportunities", {"limit": "1"}),
    "close": ("/opportunity/", {"_limit": "1"}),
    "parsalink": ("/opportunities/", {"limit": "1"}),
    "truto": ("/opportunities", {"limit": "1"}),
    "salesforce": ("/services/data/v59.0/query", {"q": "SELECT Id FROM Opportunity LIMIT 1"}),
    "hubspot": ("/crm/v3/objects/deals", {"limit": "1"}),
}


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str  # credentials | read | write | custom fields | stages | owners | companies | rate
    what: str
    fix: str = ""


@dataclass
class SystemDoctor:
    system: str
    vendor: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    def add(self, level: Level, check: str, what: str, fix: str = "") -> None:
        self.findings.append(Finding(level, check, what, fix))


def doctor(engine: Engine, systems: Sequence[str] | None = None) -> dict[str, SystemDoctor]:
    """Check every (or the named) configured system; nothing is written."""
    chosen = list(systems or engine.systems)
    reports = {name: SystemDoctor(name, engine.config.systems[name].type) for name in chosen}
    refs: dict[str, dict[str, list[Reference]]] = {}
    for name, report in reports.items():
        connector = _connect(engine, report)
        if connector is not None and _probe(engine, connector, report):
            refs[name] = _references(connector)
            _write_access(report)
            if report.vendor == "close":
                _close_custom_fields(engine, connector, report)
            if report.vendor == "salesforce":
                doctor_salesforce.check(engine, connector, report)
            for finding in _setup_findings(connector):
                report.add(finding.level, finding.check, finding.what, finding.fix)
    # a checked system that could not be read is not asked again (its finding says why)
    others = {
        name: _references_or_empty(engine, name) for name in engine.systems if name not in reports
    }
    all_refs = {**others, **{name: {} for name in reports}, **refs}
    links = doctor_refs.company_links(engine)
    renamed = companies.names_across(engine)
    for name, report in reports.items():
        if name in refs:
            doctor_refs.stages(engine, name, refs[name], report)
            doctor_refs.owners(engine, name, all_refs, report)
            doctor_refs.companies(engine, name, all_refs, links, report)
            doctor_refs.renamed(name, renamed, report)
        if stretched := pace.warning(engine, name):  # a scan system outgrew its interval
            report.add("warn", "poll interval", stretched, pace.STRETCH_FIX)
    return reports


def _connect(engine: Engine, report: SystemDoctor) -> BaseConnector | None:
    try:
        return engine.connector(report.system)
    except ConnectorError as exc:
        variable, where = CREDENTIALS.get(report.vendor, ("", ""))
        fix = f"set ${variable} (from {where})" if variable else "check the system's settings"
        if report.vendor == "truto" and "integrated_account_id" in str(exc):
            fix = (
                "in Truto: Integrated accounts → the Salesforce (or other CRM) connection → copy "
                f"its id into systems.{report.system}.options.integrated_account_id "
                "(the shipped config.yaml reads $TRUTO_SALESFORCE_ACCOUNT)"
            )
        report.add("problem", "credentials", f"cannot connect: {exc}", fix)
        return None


def _probe(engine: Engine, connector: BaseConnector, report: SystemDoctor) -> bool:
    """One listing request: credentials, read access, rate-limit headers."""
    path, params = PROBES.get(report.vendor, ("/opportunities", {}))
    if report.vendor == "truto":
        params = {
            **params,
            "integrated_account_id": str(connector.options.get("integrated_account_id")),
        }
    variable, where = CREDENTIALS.get(report.vendor, ("", "the vendor's settings"))
    base = engine.config.systems[report.system].base_url
    try:
        response = connector._request("GET", path, params=params)
    except AuthFailed as exc:
        report.add(
            "problem",
            "credentials",
            f"the vendor refused the credential (HTTP {exc.status}): {exc}",
            f"put a valid key in ${variable} — {where}",
        )
        return False
    except NotFound as exc:
        fix = f"check systems.{report.system}.base_url ({base})"
        if report.vendor == "truto":
            fix = (
                "in Truto: Integrated accounts → your CRM connection → copy its id into "
                f"systems.{report.system}.options.integrated_account_id (the shipped "
                "config.yaml reads $TRUTO_SALESFORCE_ACCOUNT); check base_url too"
            )
        report.add("problem", "read", f"the opportunities listing is not there: {exc}", fix)
        return False
    except ConnectorError as exc:
        report.add(
            "problem",
            "read",
            f"cannot list opportunities: {exc}",
            f"check systems.{report.system}.base_url ({base}) and that the account may read them",
        )
        return False
    report.add("ok", "credentials", "credential accepted")
    report.add("ok", "read", "opportunities can be listed")
    _rate(engine, report, response)
    return True


def _setup_findings(connector: BaseConnector) -> list[SetupFinding]:
    """The connector's own setup checks; one that cannot run is a problem, not a crash."""
    try:
        return connector.setup_findings()
    except ConnectorError as exc:
        return [SetupFinding("problem", "setup", f"cannot check the setup: {exc}")]


def _write_access(report: SystemDoctor) -> None:
    """No vendor here has an endpoint that says whether a key may write: say so honestly."""
    says = {
        "ruddr": "Ruddr API keys have no scopes: a valid key may write",
        "close": "a Close key has its user's rights: that user needs edit rights on opportunities",
        "parsalink": "a workspace API key may write; a user JWT has that user's role",
        "truto": "Truto writes with the connected account's rights (the CRM user who connected it)",
        "salesforce": "the connected app's run-as user's profile decides (see the org checks)",
        "hubspot": "a private app writes with its scopes (checked under 'scopes')",
    }
    report.add("ok", "write", says.get(report.vendor, "cannot be checked without writing"))


def _rate(engine: Engine, report: SystemDoctor, response: httpx.Response) -> None:
    announced = budget.describe(budget.as_stored(budget_from_headers(response.headers)))
    configured = engine.config.systems[report.system].rate_limit
    mine = (
        f"configured {configured.rate:g}/s, burst {configured.burst or configured.rate:g}"
        if configured
        else "no rate_limit configured (connector default)"
    )
    if announced:
        report.add("ok", "rate", f"vendor reports {announced}; {mine}")
    else:
        report.add("ok", "rate", f"vendor reports no rate-limit headers; {mine}")


def _references(connector: BaseConnector) -> dict[str, list[Reference]]:
    found: dict[str, list[Reference]] = {}
    for kind in ("stage", "owner", "company"):
        try:
            found[kind] = connector.references(kind)
        except (NotImplementedError, ConnectorError):
            continue
    return found


def _references_or_empty(engine: Engine, system: str) -> dict[str, list[Reference]]:
    try:
        return _references(engine.connector(system))
    except ConnectorError:
        return {}


# -- the mapping against what the vendor has ---------------------------------------------------
def _custom_paths(engine: Engine, system: str) -> list[tuple[str, str]]:
    """(``custom.cf_…`` path, what uses it) for every mapped field and the record id slot."""
    mapping = engine.config.mapping.get(system)
    if mapping is None:
        return []
    used: list[tuple[str, FieldSpec]] = list(mapping.entries())
    if mapping.record_id is not None:
        used.append(("record_id", mapping.record_id))
    paths: list[tuple[str, str]] = []
    for label, spec in used:
        for path in dict.fromkeys([spec.read, *spec.write_paths]):
            if path.startswith("custom.cf_"):
                paths.append((path, f"mapping.{system}.{label}"))
    name_field = engine.config.systems[system].options.get("name_field")
    if isinstance(name_field, str) and name_field.startswith("custom.cf_"):
        paths.append((name_field, f"systems.{system}.options.name_field"))
    return paths


def _close_custom_fields(engine: Engine, connector: Any, report: SystemDoctor) -> None:
    try:
        existing: dict[str, str] = connector.custom_fields()  # name -> custom.cf_…
    except ConnectorError as exc:
        report.add("warn", "custom fields", f"cannot list opportunity custom fields: {exc}")
        return
    known = set(existing.values())
    names = ", ".join(f"{name} ({path})" for name, path in sorted(existing.items())) or "none"
    missing = [
        (path, user) for path, user in _custom_paths(engine, report.system) if path not in known
    ]
    for path, user in missing:
        what = "crmsync's record id" if user.endswith("record_id") else user
        report.add(
            "problem",
            "custom fields",
            f"Close has no opportunity custom field {path} ({user} uses it)",
            f"in Close: Settings → Custom Fields → Opportunity → add a Text field for {what}, "
            f"then put its id as custom.cf_… in {user}. Existing: {names}",
        )
    if not missing:
        report.add("ok", "custom fields", f"every mapped custom field exists ({len(known)} in all)")
