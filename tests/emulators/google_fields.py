"""Google's partial responses (the ``fields`` system parameter), for the emulator.

``fields=nextPageToken,items(id,start,organizer(email,self)),extendedProperties/private``: a
comma-separated list of field paths, ``a/b`` selecting ``b`` inside ``a`` and ``a(b,c)``
selecting several fields inside ``a``; a selection inside a list applies to each element. Only
the fields named come back; a field named but absent is simply absent. (Google's wildcard
``*`` selects everything at its level.) See "Working with partial resources" in the Calendar
API's performance guide.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FieldsError", "parse_fields", "select_fields"]

#: A parsed selection: each field name to what is selected inside it (None: all of it).
Selection = dict[str, "Selection | None"]


class FieldsError(ValueError):
    """A ``fields`` value that is not a valid selection (Google answers 400 invalidParameter)."""


def parse_fields(text: str) -> Selection:
    """Parse a ``fields`` value. Raises :class:`FieldsError` when it is malformed."""
    selection, at = _parse_list(text, 0)
    if at != len(text):
        raise FieldsError(f"unexpected {text[at]!r} at {at} in fields={text!r}")
    return selection


def select_fields(value: Any, selection: Selection | None) -> Any:
    """``value`` with only the fields in ``selection`` (lists: each element)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [select_fields(v, selection) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        return value
    return {k: select_fields(value[k], sub) for k, sub in selection.items() if k in value}


def _parse_list(text: str, at: int) -> tuple[Selection, int]:
    selection: Selection = {}
    while True:
        path, at = _parse_name_path(text, at)
        inner: Selection | None = None
        if at < len(text) and text[at] == "(":
            inner, at = _parse_list(text, at + 1)
            if at >= len(text) or text[at] != ")":
                raise FieldsError(f"unclosed '(' in fields={text!r}")
            at += 1
        _merge(selection, path, inner)
        if at < len(text) and text[at] == ",":
            at += 1
            continue
        return selection, at


def _parse_name_path(text: str, at: int) -> tuple[list[str], int]:
    names: list[str] = []
    while True:
        start = at
        while at < len(text) and (text[at].isalnum() or text[at] in "_*"):
            at += 1
        if at == start:
            raise FieldsError(f"a field name was expected at {at} in fields={text!r}")
        names.append(text[start:at])
        if at < len(text) and text[at] == "/":
            at += 1
            continue
        return names, at


def _merge(selection: Selection, path: list[str], inner: Selection | None) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if head in selection and selection[head] is not None and inner is not None:
            existing = selection[head]
            assert existing is not None
            for k, v in inner.items():
                existing[k] = v
        else:
            selection[head] = None if head in selection and selection[head] is None else inner
        return
    sub = selection.get(head, {})
    if sub is None:  # already selected whole
        return
    selection[head] = sub
    _merge(sub, rest, inner)
