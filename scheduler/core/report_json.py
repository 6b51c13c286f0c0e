"""The coverage report as JSON-ready data for scripts (the shape is documented in
docs/operations.md); re-exported by :mod:`scheduler.core.report`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from scheduler.core.insights import Insights
from scheduler.core.report_model import Coverage, OwnerRemoved, StakeholderLine, UserReport

__all__ = ["as_json", "owner_removed_json", "report_json"]


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _line_json(line: StakeholderLine, now: datetime) -> dict[str, Any]:
    return {
        "email": line.email,
        "name": line.name,
        "tier": line.tier,
        "department": line.department,
        "last_met": _iso(line.last_met),
        "due_at": _iso(line.due_at),
        "days_overdue": line.days_overdue,
        "next_meeting": _iso(line.next_meeting),
        "next_meeting_state": line.next_meeting_state,
        "kind": line.kind,
        "late_at": _iso(line.late),
        "days_late": line.days_late(now),
    }


def insights_json(insights: Insights | None) -> dict[str, Any] | None:
    """The report's ``insights`` (None when the report has none)."""
    if insights is None:
        return None
    o = insights.outside
    return {
        "power": [
            {"source": c.source, "stakeholders": list(c.stakeholders)} for c in insights.power
        ],
        "warnings": list(insights.warnings),
        "outside_department": {
            "department": o.department,
            "days": o.days,
            "meetings": o.meetings,
            "outside": o.outside,
            "unknown": o.unknown,
            "share": o.share,
        },
        "mentor_suggestions": [
            {
                "email": m.email,
                "name": m.name,
                "completed": m.completed,
                "months": m.months,
                "text": m.text,
            }
            for m in insights.mentors
        ],
    }


def _coverage_json(items: Sequence[Coverage]) -> list[dict[str, Any]]:
    return [{"group": c.group, "met": c.met, "total": c.total, "percent": c.percent} for c in items]


def report_json(report: UserReport) -> dict[str, Any]:
    """One user's report as JSON-ready data (see docs/operations.md for the shape)."""
    r = report.rates
    return {
        "user": report.user_email,
        "generated_at": _iso(report.generated_at),
        "timezone": report.timezone,
        "overdue": [_line_json(x, report.generated_at) for x in report.overdue],
        "due_soon": [_line_json(x, report.generated_at) for x in report.due_soon],
        "stakeholders": [_line_json(x, report.generated_at) for x in report.stakeholders],
        "coverage": {
            "by_tier": _coverage_json(report.coverage_by_tier),
            "by_department": _coverage_json(report.coverage_by_department),
        },
        "rates": {
            "sent": r.sent,
            "accepted": r.accepted,
            "declined": r.declined,
            "awaiting": r.awaiting,
            "acceptance_rate": r.acceptance_rate,
            "decline_rate": r.decline_rate,
        },
        "paused": [
            {"email": p.email, "source": p.source, "until": _iso(p.until), "reason": p.reason}
            for p in report.paused
        ],
        "credentials": [
            {"provider": c.provider, "reason": c.reason, "since": _iso(c.since), "fix": c.fix}
            for c in report.credentials
        ],
        "held_replies": [
            {
                "id": h.id,
                "meeting_id": h.meeting_id,
                "sender": h.sender,
                "stakeholder": h.stakeholder,
                "answer": h.answer,
                "meeting_start": _iso(h.meeting_start),
                "received_at": _iso(h.received_at),
                "reason": h.reason,
                "accept": h.accept,
            }
            for h in report.held_replies
        ],
        "conflicts": [
            {
                "meeting_id": c.meeting_id,
                "stakeholder": c.stakeholder,
                "start": _iso(c.start),
                "note": c.note,
                "at": _iso(c.at),
            }
            for c in report.conflicts
        ],
        "below_quorum": _below_quorum_json(report),
        "insights": insights_json(report.insights),
        "to_meet": [
            {
                "email": x.email,
                "name": x.name,
                "via": x.via,
                "via_name": x.via_name,
                "status": x.status,
                "meeting_start": _iso(x.meeting_start),
                "meeting_state": x.meeting_state,
            }
            for x in report.to_meet
        ],
    }


def owner_removed_json(removed: OwnerRemoved) -> dict[str, Any]:
    """One removed owner as JSON-ready data (see docs/operations.md for the shape)."""
    return {
        "user": removed.user_email,
        "policy_path": removed.policy_path,
        "since": _iso(removed.since),
        "cancel_after": _iso(removed.cancel_after),
        "meetings": [
            {
                "id": m.id,
                "stakeholder": m.stakeholder,
                "start": _iso(m.start),
                "end": _iso(m.end),
                "state": m.state,
            }
            for m in removed.meetings
        ],
    }


def as_json(reports: Sequence[UserReport], removed: Sequence[OwnerRemoved] = ()) -> dict[str, Any]:
    """``{"version": 1, "reports": [...], "owner_removed": [...]}``: everything, JSON-ready."""
    return {
        "version": 1,
        "reports": [report_json(r) for r in reports],
        "owner_removed": [owner_removed_json(r) for r in removed],
    }


def _below_quorum_json(report: UserReport) -> list[dict[str, Any]]:
    return [
        {
            "meeting_id": b.meeting_id,
            "group": b.group,
            "kind": b.kind,
            "start": _iso(b.start),
            "declined": b.declined,
            "invited": b.invited,
            "quorum": b.quorum,
            "note": b.note,
        }
        for b in report.below_quorum
    ]
