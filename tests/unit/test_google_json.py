"""The Google client's JSON model with orjson: the same Python as the library's own, always."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from googleapiclient.model import JsonModel

from connectors.google_json import _OrjsonModel, json_model

PAGE = {
    "kind": "calendar#events",
    "nextPageToken": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA",
    "items": [
        {
            "id": f"ev{i}",
            "status": "confirmed",
            "start": {"dateTime": "2026-12-07T10:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"date": "2026-12-08"},
            "attendees": [
                {"email": "zoë@corp.example", "self": True, "responseStatus": "accepted"},
                {"email": "kim@corp.example", "responseStatus": "needsAction"},
            ],
            "extendedProperties": {"private": {"goodwillKey": 'k\u2028"quoted" \\ \U0001f600'}},
            "sequence": i,
            "ratio": 0.1 + i,
        }
        for i in range(50)
    ],
}

REPLIES: list[Any] = [
    json.dumps(PAGE).encode(),  # bytes, as httplib2 hands them over
    json.dumps(PAGE, ensure_ascii=False).encode("utf-8"),
    json.dumps(PAGE),  # str
    b"{}",
    b"[1, 2.5, null, true]",
    b"",  # no body: the library gives back the text itself
    b"<html>Bad gateway</html>",  # not JSON: the same
    b'{"n": NaN, "big": 123456789012345678901234567890}',  # Python's json only
    b'{"a": 1} trailing',
]


@pytest.mark.parametrize("wrapper", [False, True])
@pytest.mark.parametrize("content", REPLIES, ids=range(len(REPLIES)))
def test_each_reply_is_what_the_librarys_model_makes_of_it(content: Any, wrapper: bool) -> None:
    ours = _OrjsonModel(wrapper).deserialize(content)
    theirs = JsonModel(wrapper).deserialize(content)
    if isinstance(theirs, dict) and isinstance(theirs.get("n"), float):
        assert math.isnan(ours["n"])
        assert ours["big"] == theirs["big"]
        return
    assert ours == theirs
    assert type(ours) is type(theirs)


def test_a_data_wrapper_is_unwrapped_as_the_library_does() -> None:
    content = b'{"data": {"id": "x"}}'
    assert _OrjsonModel(True).deserialize(content) == {"id": "x"}
    assert _OrjsonModel(False).deserialize(content) == {"data": {"id": "x"}}


def test_bytes_that_are_not_utf8_fail_as_they_do_in_the_library() -> None:
    content = b'{"name": "\xff"}'
    with pytest.raises(UnicodeDecodeError):
        JsonModel(False).deserialize(content)
    with pytest.raises(UnicodeDecodeError):
        _OrjsonModel(False).deserialize(content)


def test_the_connector_builds_its_client_with_it() -> None:
    assert isinstance(json_model(), _OrjsonModel)
