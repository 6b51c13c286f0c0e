"""The Jinja2 environment of the owner's page (autoescape on) and its template folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.templating import Jinja2Templates

from scheduler.entrypoints.web.session import CSRF_FIELD, csrf_token

__all__ = ["TEMPLATES_DIR", "make_templates"]

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _local(moment: datetime, zone: str, fmt: str = "%a %d %b %H:%M") -> str:
    """``moment`` on the wall clock of ``zone`` (an IANA name), with the zone's abbreviation."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:{fmt}} {local.tzname()}"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.autoescape = True
    env.globals["csrf_token"] = csrf_token
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.filters["local"] = _local
    return templates
