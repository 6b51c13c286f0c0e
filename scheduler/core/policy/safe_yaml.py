"""Reading untrusted YAML: limits checked on the event stream first, then one compose.

:func:`compose` runs :func:`~scheduler.core.policy.limits.check_yaml_events` over the events
(libyaml's C parser when PyYAML has it, else the pure-Python one), and only a document within
the limits is composed into nodes, once: the same nodes give the line numbers and the data
(:func:`construct`). Syntax errors keep PyYAML's pure-Python wording whichever parser ran, so
messages do not depend on how PyYAML was built. Values Python cannot represent (``2026-02-30``,
an integer of 5,000 digits) become :class:`yaml.MarkedYAMLError` on their line, never a bare
``ValueError``.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from scheduler.core.policy.limits import LimitHit, PolicyLimits, check_yaml_events

__all__ = ["BadValue", "LimitExceeded", "compose", "construct"]


class LimitExceeded(Exception):
    """The document breaks one of the :class:`PolicyLimits` (``hit`` says where and why)."""

    def __init__(self, hit: LimitHit) -> None:
        super().__init__(hit.message)
        self.hit = hit


class BadValue(ConstructorError):
    """A scalar YAML recognised (a date, a number) that Python cannot represent."""


_KINDS = {"timestamp": "date", "int": "whole number", "float": "number"}


class _Constructor(SafeConstructor):
    """SafeConstructor whose value errors carry the line of the value."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError, AttributeError) as exc:
            shown = str(node.value) if isinstance(node, yaml.ScalarNode) else node.tag
            text = shown if len(shown) <= 40 else f"{shown[:40]}…"
            kind = _KINDS.get(node.tag.rsplit(":", 1)[-1], "value")
            # An explicit tag on text of another form (``!!timestamp peer``): PyYAML's own
            # constructor fails on its regular expression with an AttributeError.
            reason = "not written as one" if isinstance(exc, AttributeError) else str(exc)
            reason = reason.split(":", 1)[0]
            message = f"{text!r} is not a valid {kind} ({reason}); fix the value"
            raise BadValue(None, None, message, node.start_mark) from None


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _Constructor,
    Resolver,
):
    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        Resolver.__init__(self)


_Loader: type[Any]
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CLoader(CParser, _Constructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Constructor.__init__(self)
            Resolver.__init__(self)

    _Loader = _CLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _PyLoader


def _compose_with(loader_class: type[Any], text: str, limits: PolicyLimits) -> tuple[Any, Any]:
    hit = check_yaml_events(yaml.parse(text, Loader=loader_class), limits)
    if hit is not None:
        raise LimitExceeded(hit)
    loader = loader_class(text)
    try:
        return loader.get_single_node(), loader
    except BaseException:
        loader.dispose()
        raise


def compose(text: str, limits: PolicyLimits) -> tuple[yaml.Node | None, Any]:
    """Check ``text`` against ``limits``, then compose it; the loader is for :func:`construct`.

    Raises:
        LimitExceeded: a limit is broken (nothing was composed).
        yaml.YAMLError: malformed YAML, in PyYAML's pure-Python wording.
    """
    try:
        return _compose_with(_Loader, text, limits)
    except ComposerError:
        raise  # found by the event check, worded as PyYAML's composer words it
    except yaml.YAMLError:
        if _Loader is _PyLoader:
            raise
    # Malformed for libyaml: re-read with the pure-Python parser, whose messages are the
    # documented ones (and whose verdict was the only one before libyaml was used). The same
    # limits bound this pass.
    return _compose_with(_PyLoader, text, limits)


def construct(node: yaml.Node | None, loader: Any) -> Any:
    """The Python data of a composed document (``None`` for an empty one); disposes ``loader``.

    Raises:
        yaml.YAMLError: a tag or value that cannot be constructed, with its line.
    """
    try:
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
