"""The Jinja2 environment of the owner's page (autoescape on) and its template folder."""

from __future__ import annotations

from pathlib import Path

from starlette.templating import Jinja2Templates

from scheduler.entrypoints.web.session import CSRF_FIELD, csrf_token

__all__ = ["TEMPLATES_DIR", "make_templates"]

TEMPLATES_DIR = Path(__file__).parent / "templates"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.autoescape = True
    env.globals["csrf_token"] = csrf_token
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    return templates
