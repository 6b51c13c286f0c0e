"""The Google client library's JSON model, with replies parsed by orjson where it is installed.

``googleapiclient`` turns every reply into Python with ``json.loads`` (``JsonModel.deserialize``).
On an owner's events page (~1,100 events, ~330 KB with the connector's ``fields``) that is
~2.9 ms against ~1.5 ms for ``orjson.loads``, which returns the same objects. The library takes
its model as an argument (``build_from_document(..., model=...)``); this one differs from its
own only in the parser, and hands anything orjson refuses (not UTF-8, not strict JSON) to the
library's own code, so the result is what it would have been. Without orjson the library's
model is used as it is.
"""

from __future__ import annotations

from typing import Any

from googleapiclient.model import JsonModel

try:
    import orjson
except ImportError:  # pragma: no cover - orjson comes with the google extra
    orjson = None  # type: ignore[assignment]

__all__ = ["json_model"]


class _OrjsonModel(JsonModel):  # type: ignore[misc]  # the library is untyped
    """``JsonModel`` with ``orjson.loads`` first (see the module's docstring)."""

    def deserialize(self, content: Any) -> Any:
        try:
            body = orjson.loads(content)
        except (orjson.JSONDecodeError, TypeError):
            return super().deserialize(content)  # the library's own way, and its outcome
        if self._data_wrapper and "data" in body:
            body = body["data"]
        return body


def json_model(*, data_wrapper: bool = False) -> JsonModel:
    """The model to build the client with: orjson's when it is installed."""
    if orjson is None:  # pragma: no cover
        return JsonModel(data_wrapper)
    return _OrjsonModel(data_wrapper)
