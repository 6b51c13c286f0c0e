"""Rendering for a terminal: plain-text tables for plans, the demo and the coverage report.

Building a report is pure (:mod:`scheduler.core.report`); this module only prints it, in each
owner's own time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from scheduler.core.insights import Insights
from scheduler.core.report import DUE_SOON, OwnerRemoved, StakeholderLine, UserReport

__all__ = ["format_table", "render_text"]


def format_table(rows: Sequence[Sequence[str]], *, indent: str = "  ") -> list[str]:
    """Left-aligned columns; the last column is free text and is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        out.append(indent + "  ".join([*cells, row[-1]]))
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    all_rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in all_rows
    ]


def _day(value: date | datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d")
    return value.isoformat()


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M") if value else "-"


def _lateness(line: StakeholderLine, overdue: bool, now: datetime) -> str:
    if line.last_met is None:
        return "due now"
    if overdue:
        return f"{line.days_late(now)} d late"
    if line.days_overdue >= 0:  # past `every`, not yet past `at_most`
        return f"due, late in {-line.days_late(now)} d"
    return f"in {-line.days_overdue} d"


def _insights(insights: Insights) -> list[str]:
    """Private to the owner: sources of power, meetings outside the department, mentors."""
    out = ["", "Insights (private to you)"]
    covered = [c for c in insights.power if c.stakeholders]
    if covered:
        out.append(
            "  sources of power: "
            + ", ".join(f"{c.source.replace('_', ' ')} {len(c.stakeholders)}" for c in covered)
        )
    if not insights.tagged:
        out.append("  sources of power: tag stakeholders with power: [...] to see what is covered")
    out.extend(f"  {w}" for w in insights.warnings)
    o = insights.outside
    if o.department is None:
        out.append("  outside your department: add owner.department to your policy to see it")
    elif o.share is None:
        out.append(f"  outside {o.department}: no meetings with a known department in {o.days} d")
    else:
        out.append(
            f"  outside {o.department}: {o.share * 100:.0f}% of meetings in the last {o.days} d "
            f"({o.outside} of {o.meetings - o.unknown})"
        )
    out.extend(f"  {m.text}" for m in insights.mentors)
    return out


def _to_meet(report: UserReport, zone: ZoneInfo) -> list[str]:
    """Stakeholders not met yet, waiting for an introduction (none: no section)."""
    if not report.to_meet:
        return []
    out = [
        "",
        f"To meet through an introduction ({len(report.to_meet)})",
        "  not overdue and not counted in coverage until you have met them; never invited cold",
    ]
    rows = [[x.email, x.via, x.state_text(_when(x.meeting_start, zone))] for x in report.to_meet]
    out.extend(_table(["stakeholder", "via", "state"], rows))
    return out


def _coverage(report: UserReport) -> list[str]:
    """Coverage by tier and by department, saying how many to meet are not counted."""
    uncounted = (
        f"; {len(report.to_meet)} to meet through an introduction not counted"
        if report.to_meet
        else ""
    )
    out: list[str] = []
    for title, cov in (
        ("tier", report.coverage_by_tier),
        ("department", report.coverage_by_department),
    ):
        out.append("")
        out.append(f"Coverage by {title} (met within their interval{uncounted})")
        out.extend(_table([title, "met", "total", "coverage"], [
            [c.group, str(c.met), str(c.total), f"{c.percent:.0f}%"] for c in cov
        ]))  # fmt: skip
    return out


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def _render_one(report: UserReport) -> list[str]:
    zone = ZoneInfo(report.timezone)
    out = [
        f"Coverage report for {report.user_email} — {_when(report.generated_at, zone)} ({zone.key})"
    ]

    def people(title: str, lines: Sequence[StakeholderLine], overdue: bool) -> None:
        out.append("")
        out.append(f"{title} ({len(lines)})")
        if not lines:
            out.append("  nobody")
            return
        rows = [
            [
                x.email,
                x.tier,
                x.department or "-",
                _day(x.last_met, zone) if x.last_met else "never met",
                _day(x.due_at, zone),
                _lateness(x, overdue, report.generated_at),
                x.kind,
                f"{_when(x.next_meeting, zone)} ({x.next_meeting_state})"
                if x.next_meeting
                else "-",
            ]
            for x in lines
        ]
        header = [
            "stakeholder",
            "tier",
            "department",
            "last met",
            "due",
            "",
            "kind",
            "next meeting",
        ]
        out.extend(_table(header, rows))

    people("Overdue", report.overdue, True)
    people(f"Due in the next {DUE_SOON.days} days", report.due_soon, False)
    out.extend(_to_meet(report, zone))
    out.extend(_coverage(report))
    r = report.rates
    out.append("")
    out.append(
        f"Invites: {r.sent} sent, {r.accepted} accepted ({_pct(r.acceptance_rate)}), "
        f"{r.declined} declined ({_pct(r.decline_rate)}), {r.awaiting} awaiting an answer"
    )
    if report.insights is not None:
        out.extend(_insights(report.insights))
    if report.paused:
        out.append("")
        out.append(f"Paused ({len(report.paused)})")
        out.extend(_table(["stakeholder", "until", "by", "why"], [
            [p.email, _day(p.until, zone), p.source, p.reason] for p in report.paused
        ]))  # fmt: skip
    if report.credentials:
        out.append("")
        out.append("Credentials that need attention")
        for c in report.credentials:
            out.append(f"  {c.provider}: revoked since {_day(c.since, zone)} ({c.reason}); {c.fix}")
    if report.held_replies:
        out.append("")
        out.append(f"Replies not applied ({len(report.held_replies)})")
        for h in report.held_replies:
            when = f" on {_when(h.meeting_start, zone)}" if h.meeting_start else ""
            out.append(
                f"  a reply from {h.sender} about your meeting with {h.stakeholder}{when} "
                f"({h.answer}) was not applied: {h.reason}"
            )
            out.append(f"    to apply it: {h.accept}")
    if report.conflicts:
        out.append("")
        out.append(f"Conflicts ({len(report.conflicts)})")
        for x in report.conflicts:
            out.append(f"  {_when(x.start, zone)} with {x.stakeholder}: {x.note}")
    if report.below_quorum:
        out.append("")
        out.append(f"Below quorum ({len(report.below_quorum)})")
        for b in report.below_quorum:
            out.append(f"  {_when(b.start, zone)} {b.kind} {b.group}: {b.note}")
    return out


def _render_removed(removed: OwnerRemoved, now: datetime) -> list[str]:
    # The owner's zone went with their policy file: times are in UTC.
    zone = ZoneInfo("UTC")
    out = [
        f"Owner removed: {removed.user_email} — {removed.policy_path} is gone since "
        f"{_when(removed.since, zone)} UTC; they are no longer planned"
    ]
    cancel = _when(removed.cancel_after, zone)
    if not removed.meetings:
        out.append(f"  no open meetings ahead (cancelled from {cancel} UTC on)")
        return out
    if removed.cancel_after > now:
        out.append(
            f"  these meetings are cancelled at {cancel} UTC unless the file comes back "
            "(GOODWILL_POLICY_REMOVED_GRACE_S):"
        )
    else:
        out.append("  these meetings are being cancelled (the grace period is over):")
    out.extend(_table(["meeting", "stakeholder", "when (UTC)", "state"], [
        [str(m.id), m.stakeholder, _when(m.start, zone), m.state] for m in removed.meetings
    ]))  # fmt: skip
    return out


def render_text(
    reports: Sequence[UserReport],
    removed: Sequence[OwnerRemoved] = (),
    *,
    now: datetime | None = None,
) -> str:
    """Plain-text tables, one section per user, for a terminal; removed owners last."""
    if not reports and not removed:
        return "No users.\n"
    sections = ["\n".join(_render_one(r)) for r in reports]
    for r in removed:
        sections.append("\n".join(_render_removed(r, now or r.since)))
    return ("\n\n" + "=" * 72 + "\n\n").join(sections) + "\n"
