"""The emulator's partial responses (``fields``), as Google documents them."""

from __future__ import annotations

import pytest

from tests.emulators.google_fields import FieldsError, parse_fields, select_fields

EVENT = {
    "id": "e1",
    "summary": "Coffee",
    "start": {"dateTime": "2027-03-01T10:00:00Z", "timeZone": "UTC"},
    "organizer": {"email": "a@x", "self": True, "displayName": "A"},
    "attendees": [
        {"email": "b@x", "responseStatus": "accepted", "displayName": "B"},
        {"email": "c@x", "responseStatus": "declined", "comment": "no"},
    ],
    "extendedProperties": {"private": {"goodwill": "1"}, "shared": {"x": "y"}},
}


def test_nested_lists_and_paths_select_only_what_is_named() -> None:
    selection = parse_fields(
        "nextPageToken,items(id,start,organizer(email,self),attendees(email),"
        "extendedProperties/private,missing)"
    )
    page = {"kind": "calendar#events", "nextPageToken": "t", "items": [EVENT]}
    assert select_fields(page, selection) == {
        "nextPageToken": "t",
        "items": [
            {
                "id": "e1",
                "start": EVENT["start"],
                "organizer": {"email": "a@x", "self": True},
                "attendees": [{"email": "b@x"}, {"email": "c@x"}],
                "extendedProperties": {"private": {"goodwill": "1"}},
            }
        ],
    }


def test_a_wildcard_and_a_repeated_field_merge_as_google_does() -> None:
    assert select_fields(EVENT, parse_fields("*")) == EVENT
    both = parse_fields("organizer/email,organizer/self,id")
    assert select_fields(EVENT, both) == {"id": "e1", "organizer": {"email": "a@x", "self": True}}


@pytest.mark.parametrize("bad", ["", "items(", "items(id", "a,,b", "a)", "a b", "/a"])
def test_a_malformed_selection_is_refused(bad: str) -> None:
    with pytest.raises(FieldsError):
        parse_fields(bad)
