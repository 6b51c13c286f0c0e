"""Limits on untrusted policy input, and the checks that apply them before any big work is done.

A policy file is written by a user, so the loader treats it as untrusted: a file nested 20,000
levels deep, a kilobyte of YAML aliases that expands into gigabytes, or a cadence of
``99999999999999999999w`` must each end as one ``FILE:LINE: field: message`` issue, quickly.
:class:`PolicyLimits` holds the limits (defaults are the documented ones; the service builds one
from ``GOODWILL_LIMITS__POLICY_*`` settings). The checks here are pure and linear in the text:

- :func:`check_yaml_events` walks PyYAML's event stream (no nodes or objects built yet) and
  refuses too deep a nesting, too long a text, and more values than allowed, counting every
  alias as a copy of what it names (so an alias bomb is refused at the alias that overflows);
- :func:`check_data` does the same over parsed TOML data (TOML has no aliases).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import yaml
from yaml.composer import ComposerError

from scheduler.core.durations import LONGEST, format_duration

__all__ = [
    "LIMIT_SETTINGS",
    "LimitHit",
    "PolicyLimits",
    "check_data",
    "check_yaml_events",
    "scan_yaml_events",
]

#: The setting that raises each limit, named in messages so an operator knows what to change.
LIMIT_SETTINGS = {
    "max_bytes": "GOODWILL_LIMITS__POLICY_MAX_BYTES",
    "max_depth": "GOODWILL_LIMITS__POLICY_MAX_DEPTH",
    "max_values": "GOODWILL_LIMITS__POLICY_MAX_VALUES",
    "max_stakeholders": "GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS",
    "max_string": "GOODWILL_LIMITS__POLICY_MAX_STRING",
    "min_every": "GOODWILL_LIMITS__POLICY_MIN_EVERY_DAYS",
    "max_every": "GOODWILL_LIMITS__POLICY_MAX_EVERY_DAYS",
    "max_horizon": "GOODWILL_LIMITS__POLICY_MAX_HORIZON_DAYS",
}

#: The deepest nesting a limit may allow: composing and walking YAML nodes recurse per level.
_DEEPEST = 200
#: A meeting lasts at most a day, and a buffer around it is at most a day (fixed, not settings).
MAX_MEETING = timedelta(days=1)
MAX_BUFFER = timedelta(days=1)


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyLimits:
    """How much untrusted policy input the loader accepts. Defaults are the documented ones.

    Attributes:
        max_bytes: largest file, in bytes (UTF-8); checked before parsing.
        max_depth: deepest nesting: a value's path may have at most this many parts
            (``stakeholders[0].working_hours.mon-fri[0]`` has 5).
        max_values: most values in one file (every key, list item and scalar; a YAML alias
            counts as a copy of what it names, so aliases cannot expand past this).
        max_stakeholders: most entries under ``stakeholders``.
        max_string: longest text (any key or value), in characters.
        min_every: shortest tier cadence (``every``).
        max_every: longest tier cadence.
        max_horizon: longest ``availability.horizon`` (and ``min_notice``).
    """

    max_bytes: int = 1024 * 1024
    max_depth: int = 20
    max_values: int = 250_000
    max_stakeholders: int = 5_000
    max_string: int = 10_000
    min_every: timedelta = timedelta(days=1)
    max_every: timedelta = timedelta(weeks=260)
    max_horizon: timedelta = timedelta(weeks=52)

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= _DEEPEST:
            raise ValueError(f"max_depth must be 1..{_DEEPEST} (parsing recurses that deep)")
        if min(self.max_bytes, self.max_values, self.max_stakeholders, self.max_string) < 1:
            raise ValueError("policy size limits must be at least 1")
        if not timedelta(0) < self.min_every <= self.max_every <= LONGEST:
            raise ValueError(f"need 0 < min_every <= max_every <= {format_duration(LONGEST)}")
        if not timedelta(0) < self.max_horizon <= LONGEST:
            raise ValueError(f"need 0 < max_horizon <= {format_duration(LONGEST)}")

    def too_big(self, size: int) -> str:
        """The message for a file of ``size`` bytes above :attr:`max_bytes`."""
        return (
            f"the file is larger than {_size(self.max_bytes)} ({self.max_bytes} bytes), the "
            f"most a policy may be; a policy this big is almost certainly not one (split it, or "
            f"an operator can raise {LIMIT_SETTINGS['max_bytes']})"
        )

    def too_deep(self) -> str:
        return (
            f"nested more than {self.max_depth} levels deep (a policy needs about 5, as in "
            f"stakeholders[0].working_hours.mon-fri[0]); remove the extra brackets or "
            f"indentation (the limit is {LIMIT_SETTINGS['max_depth']})"
        )

    def too_many_values(self) -> str:
        return (
            f"the file holds more than {self.max_values} values (keys, list items and texts; "
            f"a YAML alias counts as a copy of what it names); remove the repetition or the "
            f"nested aliases (the limit is {LIMIT_SETTINGS['max_values']})"
        )

    def too_long(self, length: int) -> str:
        return (
            f"a text of {length} characters is longer than {self.max_string}, the most a "
            f"policy value may be; shorten it (the limit is {LIMIT_SETTINGS['max_string']})"
        )

    def too_many_stakeholders(self, count: int) -> str:
        return (
            f"{count} stakeholders is more than {self.max_stakeholders}, the most one policy "
            f"may list; split the list (or an operator can raise "
            f"{LIMIT_SETTINGS['max_stakeholders']})"
        )

    def every_range(self) -> str:
        return f"between {format_duration(self.min_every)} and {format_duration(self.max_every)}"


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


@dataclasses.dataclass(frozen=True, slots=True)
class LimitHit:
    """Where a limit was hit, and why.

    Attributes:
        message: what to fix.
        line: the 1-based line (YAML; ``None`` for TOML, where ``path`` gives the line).
        path: the document path of the value concerned, e.g. ``("stakeholders", 3, "notes")``.
        field: whether ``path`` names the field to fix (a long text), or only shows where the
            limit was crossed (too deep, too many values).
    """

    message: str
    line: int | None = None
    path: tuple[str | int, ...] = ()
    field: bool = False


@dataclasses.dataclass(slots=True)
class _Open:
    """One mapping or sequence being read: where it started and what it holds so far."""

    anchor: str | None
    values_before: int
    depth: int
    deepest: int
    mapping: bool
    children: int = 0  # events read inside (a mapping alternates key, value)
    key: str | int = ""  # a mapping's latest key
    keys: set[str] | None = None  # a mapping's keys so far (plain scalars)


def _path(stack: list[_Open]) -> tuple[str | int, ...]:
    """The document path of the value the next event starts (a key: its mapping's path)."""
    path: list[str | int] = []
    for frame in stack:
        if frame.mapping:
            if frame.children % 2 == 0:
                break  # the next event is a key
            path.append(frame.key)
        else:
            path.append(frame.children)
    return tuple(path)


def _read_child(stack: list[_Open], key: str | int = "?") -> None:
    """Count one finished value in the innermost mapping or sequence."""
    if stack:
        parent = stack[-1]
        if parent.mapping and parent.children % 2 == 0:
            parent.key = key
        parent.children += 1


@dataclasses.dataclass
class _Walk:
    """What :func:`check_yaml_events` has seen so far."""

    values: int = 0
    stack: list[_Open] = dataclasses.field(default_factory=list)
    #: anchor -> (values, nesting below it)
    sizes: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    #: anchor -> its mark (libyaml's or PyYAML's Mark)
    anchors: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the mark where the (first) document's content starts
    root: Any = None
    documents: int = 0
    #: False once a mapping repeats a key, or has a key that is not a plain scalar (an alias,
    #: a collection): composing would report or could hide a duplicate there.
    plain_keys: bool = True

    def key(self, event: yaml.Event) -> None:
        """Note ``event`` if it is a mapping key (the innermost mapping expects a key)."""
        if not self.stack:
            return
        parent = self.stack[-1]
        if not parent.mapping or parent.children % 2:
            return
        if not isinstance(event, yaml.ScalarEvent):
            self.plain_keys = False
            return
        if parent.keys is None:
            parent.keys = set()
        elif event.value in parent.keys and event.value != "<<":
            self.plain_keys = False
        parent.keys.add(event.value)

    def document(self, mark: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise ComposerError(
                "expected a single document in the stream", self.root,
                "but found another document", mark,
            )  # fmt: skip

    def anchor(self, event: yaml.Event, mark: Any) -> None:
        if isinstance(event, yaml.NodeEvent) and self.root is None:
            self.root = mark
        anchor = getattr(event, "anchor", None)
        if anchor is None or isinstance(event, yaml.AliasEvent):
            return
        if anchor in self.anchors:
            raise ComposerError(
                f"found duplicate anchor {anchor!r}; first occurrence", self.anchors[anchor],
                "second occurrence", mark,
            )  # fmt: skip
        self.anchors[anchor] = mark

    def alias(self, event: yaml.AliasEvent, line: int, mark: Any) -> tuple[int, int] | LimitHit:
        """The (values, nesting) an alias adds, or why it is refused."""
        if event.anchor not in self.sizes:
            if any(o.anchor == event.anchor for o in self.stack):
                message = (
                    f"the alias *{event.anchor} is inside the value it names, which would "
                    f"repeat forever; remove the alias"
                )
                return LimitHit(message, line, _path(self.stack))
            raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
        return self.sizes[event.anchor]

    def close(self) -> None:
        if not self.stack:
            return
        done = self.stack.pop()
        if done.anchor is not None:
            self.sizes[done.anchor] = (self.values - done.values_before, done.deepest - done.depth)
        if self.stack:
            self.stack[-1].deepest = max(self.stack[-1].deepest, done.deepest)
        _read_child(self.stack)


def check_yaml_events(events: Iterable[yaml.Event], limits: PolicyLimits) -> LimitHit | None:
    """Refuse a YAML event stream that breaks a limit; ``None`` when it keeps to all of them.

    See :func:`scan_yaml_events`, which also says whether every mapping key is plain.
    """
    return scan_yaml_events(events, limits)[0]


def scan_yaml_events(
    events: Iterable[yaml.Event], limits: PolicyLimits
) -> tuple[LimitHit | None, bool]:
    """The limit a YAML event stream breaks (``None``: none), and whether its keys are plain.

    Keys are plain when no mapping repeats a key (merge keys ``<<`` aside) and every key is a
    scalar written out (no alias, no collection): then no duplicate key can be hidden from
    loading, and a policy loaded without line positions is the one the positioned loader gives.

    Linear in the number of events: nothing is composed or constructed. An alias adds the
    number of values (and the nesting) of what it names, so nested aliases are counted as if
    written out; an alias inside the value it names (a cycle) is refused outright.

    Raises:
        yaml.YAMLError: a syntax error from the parser; or what composing would refuse (an
            undefined alias, a duplicate anchor, a second document), worded as PyYAML's
            composer words it, so that composing a stream that passed cannot fail.
    """
    w = _Walk()
    stack = w.stack
    scalar = yaml.ScalarEvent
    for event in events:
        # The common event inline: a scalar without anchor after the first node. The same
        # steps as in _step, in the same order (a broken limit is left to _step to word).
        if type(event) is not scalar or event.anchor is not None or w.root is None:
            hit = _step(w, event, limits)
            if hit is not None:
                return hit, w.plain_keys
            continue
        value: str = event.value
        depth = len(stack)
        if len(value) > limits.max_string or depth > limits.max_depth:
            return _step(w, event, limits), w.plain_keys
        if w.values + 1 > limits.max_values:
            return _step(w, event, limits), w.plain_keys
        w.values += 1
        if stack:
            parent = stack[-1]
            if parent.deepest < depth:
                parent.deepest = depth
            if parent.mapping and parent.children % 2 == 0:  # a key
                if parent.keys is None:
                    parent.keys = set()
                elif value in parent.keys and value != "<<":
                    w.plain_keys = False
                parent.keys.add(value)
                parent.key = value
            parent.children += 1
    return None, w.plain_keys


def _step(w: _Walk, event: yaml.Event, limits: PolicyLimits) -> LimitHit | None:
    """One event of :func:`scan_yaml_events`: the limit it breaks, or ``None``."""
    kind = type(event)
    if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
        w.close()
        return None
    depth = len(w.stack)  # the path length of the value this event starts
    mark: Any = event.start_mark
    if kind is yaml.DocumentStartEvent:
        w.document(mark)
        return None
    w.anchor(event, mark)
    if not isinstance(event, yaml.NodeEvent):
        return None
    w.key(event)
    line = mark.line + 1 if mark is not None else 1
    if isinstance(event, yaml.ScalarEvent):
        w.values += 1
        if len(event.value) > limits.max_string:
            return LimitHit(limits.too_long(len(event.value)), line, _path(w.stack), True)
        if event.anchor is not None:
            w.sizes[event.anchor] = (1, 0)
        height = 0
    elif isinstance(event, yaml.CollectionStartEvent):
        w.values += 1
        if depth > limits.max_depth:
            return LimitHit(limits.too_deep(), line, _path(w.stack))
        if w.values > limits.max_values:
            return LimitHit(limits.too_many_values(), line, _path(w.stack))
        mapping = isinstance(event, yaml.MappingStartEvent)
        w.stack.append(_Open(event.anchor, w.values - 1, depth, depth, mapping))
        return None
    else:  # an alias
        assert isinstance(event, yaml.AliasEvent)
        added = w.alias(event, line, mark)
        if isinstance(added, LimitHit):
            return added
        size, height = added
        w.values += size
    if depth + height > limits.max_depth:
        return LimitHit(limits.too_deep(), line, _path(w.stack))
    if w.values > limits.max_values:
        return LimitHit(limits.too_many_values(), line, _path(w.stack))
    if w.stack:
        w.stack[-1].deepest = max(w.stack[-1].deepest, depth + height)
    _read_child(w.stack, event.value if isinstance(event, yaml.ScalarEvent) else "?")
    return None


def check_data(data: Any, limits: PolicyLimits) -> LimitHit | None:
    """Refuse parsed data (TOML: a tree, no sharing) that breaks a limit; iterative, linear."""
    values = 0
    todo: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while todo:
        path, value = todo.pop()
        values += 1
        if values > limits.max_values:
            return LimitHit(limits.too_many_values(), path=path)
        if len(path) > limits.max_depth:
            return LimitHit(limits.too_deep(), path=path[: limits.max_depth + 1])
        if isinstance(value, str) and len(value) > limits.max_string:
            return LimitHit(limits.too_long(len(value)), path=path, field=True)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and len(key) > limits.max_string:
                    return LimitHit(limits.too_long(len(key)), path=path, field=True)
                values += 1  # the key
                todo.append(((*path, key), item))
        elif isinstance(value, list):
            todo.extend(((*path, index), item) for index, item in enumerate(value))
    return None
