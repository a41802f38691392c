"""The dashboard: the sign-in form, the incidents across projects with their Acknowledge and Resolve
buttons, a filter, and the history of resolutions (README "HTTP API, dashboard and webhook intake").

Sign-in takes a person's named token (README "People and tokens") or PAGERULES_API_TOKEN through
a form (rate limited per client address, same-origin only) and then holds a session cookie (HttpOnly,
SameSite=Strict, Secure over https) naming the person, checked against the tokens file on every
request; every form that changes something carries the session's CSRF token. Pages are server-rendered; the filter is
a GET form, so everything works without JavaScript (the script only refreshes the page).
"""
from __future__ import annotations

import heapq
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from engine import severity as sev
from engine.dispatch.outcomes import Status
from engine.errors import PageRulesError
from engine.language.routes import Route, load_routes, pick_route
from engine.pagerduty import manual
from engine.pagerduty.records import StoredIncident
from engine.pagerduty.state import State
from engine.web.auth import client_address, cross_origin
from engine.web.context import act_for, incident_view, web
from engine.web.tokens import Entry

log = logging.getLogger("pagerules.server")
NO_REPO = "(no repo)"
NO_DEFAULT_POLICY = "PAGERDUTY_ESCALATION_POLICY_ID is not set: set it to name whose on-call to show"
SHARED_PERSON = "dashboard"  # who signed in with PAGERULES_API_TOKEN, in the audit trail
UI_NOTICE = {Status.ALREADY_RESOLVED.value: "Not acknowledged: {key} is already resolved in PagerDuty "
                                            "(acknowledging would re-open it). The list is now up to date."}
AUDIT_SCAN = 2000  # audit rows read for "who acknowledged" and the history (the newest first)
HISTORY_ROWS = 50
MAX_MESSAGE = 2000  # characters of a resolution message typed in the dashboard
PAGE_ROWS = 100  # open incidents listed on the page; the others are counted, and the filter reaches them
MAX_CARDS = 50  # project cards; past it, only the projects of the incidents listed have one

dashboard = Blueprint("dashboard", __name__)


@dashboard.app_template_filter("utc")
def utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


@dashboard.app_template_filter("iso")
def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@dashboard.app_template_filter("pd_time")
def pd_time(text: str) -> str:
    """A time PagerDuty gave (ISO 8601, e.g. an on-call shift's end) as ``2026-12-04 09:00 UTC``; any
    other text as it came."""
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if at.tzinfo is None:
        return str(text)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def ago(seconds: float) -> str:
    """``12 min ago``: minutes under an hour, hours under a day, then days (as Grafana's alert list)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def short_title(title_format: str, severity: str, title: str) -> str:
    """The title without what ``title_format`` put around it for this severity (``[CodeSpar] Critical: ``),
    only when the title starts with exactly that prefix; any other title is shown whole."""
    marker = "\x00"
    prefix, _, suffix = title_format.format(Severity=severity.capitalize(), severity=severity,
                                            title=marker).partition(marker)
    if not title.startswith(prefix) or len(title) == len(prefix):
        return title
    rest = title[len(prefix):]
    if suffix and rest.endswith(suffix) and len(rest) > len(suffix):
        return rest[: -len(suffix)]
    return rest


def pagerduty_link(incident: Any) -> str | None:
    """The incident's page in PagerDuty when the state kept its ``html_url`` (an http(s) URL only)."""
    url = getattr(incident, "html_url", None)
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


@dashboard.app_context_processor
def _who() -> dict[str, Any]:
    """Every page's header says who is signed in (the view checked the session first)."""
    person = session.get("person")
    return {"signed_in_as": person if isinstance(person, str) else None,
            "signed_in_shared": "person" in session and "token_created" not in session}


@dashboard.get("/login")
def login_form() -> Any:
    return render_template("login.html", error=None)


@dashboard.post("/login")
def login() -> Any:
    client = client_address(request)
    refused = _login_refused(client)
    if refused:
        return refused
    who = web().sign_in(request.form.get("token"))
    if not who:
        web().limiter.failed(client)
        log.warning("dashboard sign-in with a wrong or revoked token from %s", client)
        return render_template("login.html", error="That token is not right (or it was revoked)."), 401
    web().limiter.succeeded(client)
    session.clear()
    # The session holds who and which of their tokens (its creation time), never the token or its hash,
    # so revoking or replacing that token signs the session out at its next request.
    if isinstance(who, Entry):
        session["person"], session["token_created"] = who.name, who.created
        log.info("dashboard sign-in by %s from %s", who.name, client)
    else:
        session["person"] = SHARED_PERSON
    session["csrf"] = secrets.token_urlsafe(24)
    return redirect(url_for("dashboard.page"))


def signed_in_person() -> str | None:
    """Who this session signed in as, checked against the tokens file on every request (a revoked
    token ends its sessions at once); None, with the session cleared, when nobody or no longer."""
    person = session.get("person")
    if not isinstance(person, str):
        return None
    if "token_created" in session:
        if not web().tokens.still_active(person, float(session["token_created"])):
            log.info("dashboard session of %s ended: its token was revoked or replaced", person)
            session.clear()
            return None
        act_for(person)
    return person


def _login_refused(client: str) -> tuple[str, int, dict[str, str]] | None:
    """The sign-in page to answer before the token is even looked at: rate limited (429) or cross-site (403)."""
    wait = web().limiter.retry_after(client)
    if wait is not None:
        page = render_template("login.html", error=f"Too many wrong tokens; try again in {wait} s.")
        return page, 429, {"Retry-After": str(wait)}
    foreign = cross_origin(request)
    if foreign:
        return render_template("login.html", error=f"Sign-in refused: {foreign}. Open this page directly."), 403, {}
    return None


@dashboard.post("/logout")
def logout() -> Any:
    _check_csrf()
    session.clear()
    return redirect(url_for("dashboard.login_form"))


@dashboard.get("/")
def page() -> Any:
    person = signed_in_person()
    if person is None:
        return redirect(url_for("dashboard.login_form"))
    asked = OnCallAsked()
    oncall, oncall_error = asked.people(web().config.escalation_policy_id)
    routes, routes_error = _routes()
    refresh_error = web().refresher.maybe()
    state = web().backend.state
    audit = state.recent_audit(AUDIT_SCAN)
    chosen = _chosen()
    found = _open(state, chosen)
    incidents = _rows(found.listed, audit, _oncall_by_route(asked, routes))
    projects = [] if routes_error else _project_cards(found.card_repos, routes, asked)
    return render_template("dashboard.html", oncall=oncall, oncall_error=oncall_error, incidents=incidents,
                           projects=projects, routes_error=routes_error, matching=found.matching,
                           more_projects=found.more_projects, total=found.total, repos=found.repos,
                           severities=sev.SEVERITIES[::-1],
                           chosen=chosen, audit=audit[:15], failures=list(web().backend.notifier.failures)[:5],
                           csrf=session["csrf"], now=web().backend.clock(), notice=request.args.get("notice"),
                           refresh_error=refresh_error, ago=ago, no_default_policy=NO_DEFAULT_POLICY)


@dashboard.get("/history")
def history() -> Any:
    person = signed_in_person()
    if person is None:
        return redirect(url_for("dashboard.login_form"))
    audit = web().backend.state.recent_audit(AUDIT_SCAN)
    return render_template("history.html", resolutions=_resolutions(audit)[:HISTORY_ROWS], csrf=session["csrf"],
                           now=web().backend.clock(), ago=ago)


@dashboard.post("/ui/incidents/<path:key>/acknowledge")
def acknowledge(key: str) -> Any:
    _signed_in_form()
    line = manual.acknowledge(web().config, web().acting_as(SHARED_PERSON), key)
    notice = UI_NOTICE.get(line["status"], "{status}: {key}").format(status=line["status"], key=key)
    if line.get("error") and line["status"] != Status.ALREADY_RESOLVED.value:
        notice += f" ({line['error']})"
    return redirect(url_for("dashboard.page", notice=notice))


@dashboard.post("/ui/incidents/<path:key>/resolve")
def resolve(key: str) -> Any:
    _signed_in_form()
    message = str(request.form.get("message", "")).strip()
    if len(message) > MAX_MESSAGE:
        abort(400, f"the resolution message has {len(message)} characters; at most {MAX_MESSAGE}")
    line = manual.resolve(web().config, web().acting_as(SHARED_PERSON), key, message or None)
    notice = f"{line['status']}: {key}"
    if line.get("error"):
        notice += f" ({line['error']})"
    return redirect(url_for("dashboard.page", notice=notice))


def _signed_in_form() -> None:
    """A button's post: a signed-in session, from this site (Origin/Referer), with the session's form token."""
    if signed_in_person() is None:
        abort(401)
    foreign = cross_origin(request)
    if foreign:
        abort(403, f"refused: {foreign}; use the dashboard's own page")
    _check_csrf()


class OnCallAsked:
    """Who is on call per escalation policy, each policy asked of PagerDuty at most once per page load
    (the global one, the routes' ones for the incidents and for the project cards alike); a policy
    PagerDuty could not answer for gives nobody and why, and the page shows either."""

    def __init__(self) -> None:
        self._answers: dict[str, tuple[list[manual.OnCall], str | None]] = {}

    def people(self, policy: str | None) -> tuple[list[manual.OnCall], str | None]:
        if not policy:  # an Events API default and no PAGERDUTY_ESCALATION_POLICY_ID: nobody to ask
            return [], NO_DEFAULT_POLICY
        if policy not in self._answers:
            try:
                self._answers[policy] = manual.oncall(web().backend.client, policy), None
            except PageRulesError as exc:
                self._answers[policy] = [], str(exc)
        return self._answers[policy]

    def name(self, policy: str | None) -> str:
        people, error = self.people(policy)
        return people[0].name if people else ("unknown" if error else "nobody")


def _routes() -> tuple[tuple[Route, ...], str | None]:
    """The config's routes, or none and why: the daemon and `check` report a bad route; the page shows the
    global on-call and says so."""
    try:
        return tuple(load_routes(web().config)), None
    except PageRulesError as exc:
        return (), str(exc)


def _repo(incident: StoredIncident) -> str:
    return incident.labels.get("repo") or NO_REPO


def _chosen() -> dict[str, str]:
    """The filter from the query string (``?repo=acme/db&severity=high``); unknown values choose nothing."""
    repo = str(request.args.get("repo", "")).strip()
    severity = str(request.args.get("severity", "")).strip()
    return {"repo": repo, "severity": severity if sev.is_severity(severity) else ""}


def _filtered(incidents: Iterable[StoredIncident], chosen: dict[str, str]) -> list[StoredIncident]:
    return [i for i in incidents if (not chosen["repo"] or _repo(i) == chosen["repo"])
            and (not chosen["severity"] or i.severity == chosen["severity"])]


def _oncall_by_route(asked: OnCallAsked, routes: Sequence[Route]) -> Callable[[StoredIncident], str]:
    """Who is on call for an incident: the escalation policy of the route its labels take (README "Routes"),
    else the global one."""
    default = web().config.escalation_policy_id

    def who(incident: StoredIncident) -> str:
        route = pick_route(routes, incident.labels)
        return asked.name(route.escalation_policy_id if route and route.escalation_policy_id else default)
    return who


@dataclass(frozen=True)
class _Open:
    """What the page shows of the open incidents: the ones listed, how many match and are open, the
    projects of the filter and of the cards."""

    listed: list[StoredIncident]
    matching: int
    total: int
    repos: list[str]
    card_repos: list[str]
    more_projects: int


def _open(state: State, chosen: dict[str, str]) -> _Open:
    """Counts, the page and the projects from the state's own queries (State.open_counts, open_first,
    open_repos): a page load costs the same with 100 or 100,000 open. The "(no repo)" filter, for
    incidents without a repo label, reads them all as before (rare, and no index names them)."""
    if chosen["repo"] == NO_REPO:
        return _open_in_python(state.open_incidents(), chosen)
    repo, severity = chosen["repo"] or None, chosen["severity"] or None
    total = state.open_count()
    matching = state.open_count(repo, severity) if repo or severity else total
    listed = state.open_first(PAGE_ROWS, repo, severity)
    repos = state.open_repos() + ([NO_REPO] if total > state.label_count("repo") else [])
    if repo:
        of_matching, more = ([repo] if matching else []), 0
    else:  # past MAX_CARDS projects only "more" is known: the label index is read no further
        of_matching = state.open_repos(severity, MAX_CARDS + 1) if severity else _labelled(repos)
        more = -1 if severity and len(of_matching) > MAX_CARDS else 0
    card_repos = _card_repos_of(of_matching, listed)
    return _Open(listed, matching, total, sorted(repos), card_repos, more or len(of_matching) - len(card_repos))


def _labelled(repos: list[str]) -> list[str]:
    return [r for r in repos if r != NO_REPO]


def _open_in_python(every: list[StoredIncident], chosen: dict[str, str]) -> _Open:
    matching = _filtered(every, chosen)
    listed = _first(matching, PAGE_ROWS)
    of_matching = sorted(_repos_of(matching))
    card_repos = _card_repos_of(of_matching, listed)
    return _Open(listed, len(matching), len(every), sorted({_repo(i) for i in every}), card_repos,
                 len(of_matching) - len(card_repos))


def _order(incident: StoredIncident) -> tuple[int, float, str]:
    """The list's order: the most severe first, then the one open longest (it has waited longest for someone)."""
    return -_rank(incident.severity), incident.opened_at, incident.incident_key


def _first(incidents: list[StoredIncident], count: int) -> list[StoredIncident]:
    """The first ``count`` incidents in the list's order, without sorting all of them."""
    return heapq.nsmallest(count, incidents, key=_order)


def _repos_of(incidents: Iterable[StoredIncident]) -> set[str]:
    return {i.labels["repo"] for i in incidents if i.labels.get("repo")}


def _card_repos_of(repos_matching: list[str], listed: list[StoredIncident]) -> list[str]:
    """The projects with a card, by name: each project with an open incident the filter matches; past
    MAX_CARDS of them, the first MAX_CARDS projects of the incidents listed, most severe first, so the
    on-call of the worst incidents is on the page and the page stays short."""
    repos = set(repos_matching)
    if len(repos) > MAX_CARDS:
        in_order = dict.fromkeys(i.labels["repo"] for i in listed if i.labels.get("repo"))
        repos = set(list(in_order)[:MAX_CARDS])
    return sorted(repos)


def _project_cards(repos: Iterable[str], routes: Sequence[Route], asked: OnCallAsked) -> list[dict[str, Any]]:
    """One card per project named: whose on-call its incidents reach (the route that repo=R takes, as
    `pagerules oncall --repo R` says) and who that is now."""
    cards = []
    for repo in repos:
        target = manual.project_target(web().config, repo, routes)
        people, error = asked.people(target.escalation_policy_id) if target.escalation_policy_id else ([], None)
        cards.append({"repo": repo, "route": target.route, "why": target.why, "also": target.also,
                      "unknown": target.unknown, "people": people, "error": error})
    return cards


def _rows(incidents: list[StoredIncident], audit: list[dict[str, Any]],
          who: Callable[[StoredIncident], str]) -> list[dict[str, Any]]:
    """Across projects, the most severe first, then the oldest first; with who acknowledged and when, and
    who is on call for it."""
    acked: dict[str, dict[str, Any]] = {}
    for entry in audit:  # newest first: the first one seen is the latest acknowledgment
        if entry["action"] == "acknowledged" and entry["incident_key"]:
            acked.setdefault(entry["incident_key"], entry)
    title_format = web().config.title_format
    rows = []
    for incident in sorted(incidents, key=_order):
        view = incident_view(incident)
        ack = acked.get(incident.incident_key) if incident.status == "acknowledged" else None
        view.update(repo=_repo(incident), short_title=short_title(title_format, incident.severity, incident.title),
                    url=pagerduty_link(incident), acked_by=ack["actor"] if ack else None,
                    acked_at=ack["at"] if ack else None, oncall=who(incident))
        rows.append(view)
    return rows


def _rank(severity: str) -> int:
    return sev.rank(severity) if sev.is_severity(severity) else -1


def _resolutions(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resolved incidents, newest first, with who resolved them and the message; the title comes from the
    audit row of the incident's creation when it is still among the rows read."""
    titles: dict[str, str] = {}
    for entry in audit:
        title = entry["detail"].get("title")
        if entry["action"] in ("create", "deduplicate") and entry["incident_key"] and title:
            titles.setdefault(entry["incident_key"], str(title))
    return [{"at": e["at"], "actor": e["actor"], "incident_key": e["incident_key"],
             "incident_id": e["incident_id"], "title": _any_short(titles.get(e["incident_key"])),
             "message": e["detail"].get("message"), "note": e["detail"].get("note")}
            for e in audit if e["action"] == "resolved"]


def _any_short(title: str | None) -> str | None:
    """A stored title without its severity's prefix (the history does not keep the severity)."""
    if title is None:
        return None
    for name in sev.SEVERITIES:
        short = short_title(web().config.title_format, name, title)
        if short != title:
            return short
    return title


def _check_csrf() -> None:
    if not session.get("csrf") or not hmac.compare_digest(str(request.form.get("csrf", "")), session["csrf"]):
        abort(403, "missing or stale form token; reload the page")
