"""Sign-in link pieces without a server: local paths only, link lifetimes as settings."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduler.entrypoints.web.signin_links import local_path
from scheduler.settings import WebSettings


@pytest.mark.parametrize(
    ("given_path", "kept"),
    [
        ("/", "/"),
        ("/meetings/3?x=1#a", "/meetings/3?x=1#a"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/a\\b", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        ("/\r\nSet-Cookie: x", "/"),
        (None, "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_local_path(given_path: object, kept: str) -> None:
    assert local_path(given_path) == kept


@given(st.text(max_size=40))
def test_local_path_never_leaves_the_site(text: str) -> None:
    path = local_path(text)
    resolved = urljoin("https://goodwill.example/here", path)
    assert resolved.startswith("https://goodwill.example/")


@pytest.mark.parametrize(
    ("field", "value"),
    [("link_ttl_s", 59), ("link_ttl_s", 86401), ("action_link_ttl_s", 0),
     ("action_link_ttl_s", 31 * 86400)],
)  # fmt: skip
def test_link_lifetimes_are_range_checked(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as error:
        WebSettings(**{field: value})
    assert f"GOODWILL_WEB__{field.upper()}" in str(error.value)


def test_link_lifetime_defaults() -> None:
    web = WebSettings()
    assert (web.link_ttl_s, web.action_link_ttl_s) == (900, 604800)
