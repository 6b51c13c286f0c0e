"""Where each part of a policy document is written: 1-based line numbers for issues.

YAML positions come from PyYAML's node tree (composed once, within the limits, by
:mod:`scheduler.core.policy.safe_yaml`), which also reveals duplicate keys that loading would
silently merge. :mod:`tomllib` reports no positions, so TOML gets a small hand-written scanner
over keys, table headers and values; it also finds the line where TOML nests too deeply.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Literal, Protocol

import yaml

from scheduler.core.policy.limits import PolicyLimits
from scheduler.core.policy.safe_yaml import LimitExceeded, compose

__all__ = ["DocPath", "LineIndex", "PolicyFormat", "line_index"]

PolicyFormat = Literal["yaml", "toml"]
#: A location in the policy document: mapping keys and list indices, e.g. ``("stakeholders", 2)``.
DocPath = tuple[str | int, ...]


class LineIndex(Protocol):
    """Maps a document path to a 1-based line; missing paths fall back to their nearest parent."""

    def line_of(self, path: DocPath) -> int: ...


class _Lines:
    """Shared look-up: the nearest recorded ancestor of a path."""

    def __init__(self) -> None:
        self.lines: dict[DocPath, int] = {(): 1}

    def record(self, path: DocPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def line_of(self, path: DocPath) -> int:
        while path not in self.lines:
            path = path[:-1]
        return self.lines[path]


class _YamlLines(_Lines):
    """Line numbers from PyYAML's node tree; also notes duplicate keys YAML silently merges."""

    def __init__(self, root: yaml.Node | None) -> None:
        super().__init__()
        self.duplicates: list[tuple[DocPath, str]] = []
        if root is not None:
            self.lines[()] = root.start_mark.line + 1
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: DocPath) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    self.duplicates.append(
                        (
                            (*path, key),
                            f"duplicate key '{key}' (first at line {seen[key]}); YAML would keep "
                            f"only the last one — remove or merge one of them",
                        )
                    )
                    self.lines[(*path, key)] = line
                seen.setdefault(key, line)
                self.record((*path, key), line)
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record((*path, index), item.start_mark.line + 1)
                self._walk(item, (*path, index))


class _TomlLines(_Lines):
    """Line numbers for TOML, which :mod:`tomllib` does not report.

    A small structural scanner over text that tomllib has already accepted: it follows table
    headers (``[[stakeholders]]`` counted per array), ``key = value`` lines, inline tables and
    arrays. Anything it cannot follow just leaves that path to fall back to its parent.

    It stops at the first path longer than ``max_depth`` parts and notes its line in
    ``too_deep``, so neither it nor anything after it recurses or copies without bound.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")
    _SCALAR = re.compile(r"[^,\]}\n#]*")  # numbers, booleans, dates: up to a delimiter

    def __init__(self, text: str, max_depth: int = 20) -> None:
        super().__init__()
        self._text = text
        self._i = 0
        self._max_depth = max_depth
        self.too_deep: int | None = None
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        self._counts: dict[DocPath, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):
            pass  # best effort: recorded lines stay, the rest fall back to parents
        except _TooDeep:
            pass

    def _bounded(self, length: int, line: int | None = None) -> None:
        if length > self._max_depth:
            self.too_deep = self._line() if line is None else line
            raise _TooDeep

    def _line(self) -> int:
        return bisect_right(self._newlines, self._i - 1) + 1

    def _peek(self, n: int = 1) -> str:
        return self._text[self._i : self._i + n]

    def _skip(self, newlines: bool) -> None:
        while self._i < len(self._text):
            c = self._text[self._i]
            if c in " \t\r" or (newlines and c == "\n"):
                self._i += 1
            elif c == "#":
                end = self._text.find("\n", self._i)
                self._i = len(self._text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if not self._text.startswith(token, self._i):
            raise ValueError(f"expected {token!r} at {self._i}")
        self._i += len(token)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            c = self._peek()
            if c in ('"', "'"):
                end = self._text.index(c, self._i + 1)
                while c == '"' and self._text[end - 1] == "\\":
                    end = self._text.index(c, end + 1)
                parts.append(self._text[self._i + 1 : end])
                self._i = end + 1
            else:
                match = self._BARE.match(self._text, self._i)
                if match is None:
                    raise ValueError(f"no key at {self._i}")
                parts.append(match.group())
                self._i = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._i += 1

    def _resolve(self, key: tuple[str, ...]) -> DocPath:
        # A header below an array of tables refers to that array's latest element.
        out: DocPath = ()
        for part in key:
            out = (*out, part)
            if out in self._counts:
                out = (*out, self._counts[out])
        return out

    def _document(self) -> None:
        table: DocPath = ()
        while True:
            self._skip(newlines=True)
            if self._i >= len(self._text):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._i += 2
                key = self._key()
                self._bounded(len(key), line)
                self._expect("]]")
                array = (*self._resolve(key[:-1]), key[-1])
                self._bounded(len(array) + 1, line)
                self._counts[array] = self._counts.get(array, -1) + 1
                table = (*array, self._counts[array])
                self.record(array, line)
                self.record(table, line)
            elif self._peek() == "[":
                self._i += 1
                key = self._key()
                self._bounded(len(key), line)
                self._expect("]")
                table = self._resolve(key)
                self._bounded(len(table), line)
                for depth in range(1, len(table) + 1):
                    self.record(table[:depth], line)
            else:
                self._pair(table)

    def _pair(self, table: DocPath) -> None:
        line = self._line()
        key = self._key()
        self._bounded(len(table) + len(key), line)
        self._expect("=")
        path = (*table, *key)
        for depth in range(len(table) + 1, len(path) + 1):
            self.record(path[:depth], line)
        self._value(path)

    def _value(self, path: DocPath) -> None:
        self._skip(newlines=False)
        c = self._peek()
        if c == "{":
            self._i += 1
            while True:
                self._skip(newlines=True)
                self._not_at_end()
                if self._peek() == "}":
                    self._i += 1
                    return
                self._pair(path)
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._i += 1
        elif c == "[":
            self._i += 1
            index = 0
            while True:
                self._skip(newlines=True)
                self._not_at_end()
                if self._peek() == "]":
                    self._i += 1
                    return
                self._bounded(len(path) + 1)
                self.record((*path, index), self._line())
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._i += 1
        elif c in ('"', "'"):
            quote = c * 3 if self._peek(3) == c * 3 else c
            end = self._i + len(quote)
            while True:
                end = self._text.index(quote, end)
                if c == '"' and self._text[end - 1] == "\\" and self._text[end - 2] != "\\":
                    end += 1
                    continue
                break
            self._i = end + len(quote)
        else:
            match = self._SCALAR.match(self._text, self._i)
            # Always move on: text tomllib has not accepted may hold no delimiter at all.
            self._i = max(match.end() if match else self._i, self._i + 1)

    def _not_at_end(self) -> None:
        if self._i >= len(self._text):
            raise ValueError("unterminated array or table")


class _TooDeep(Exception):
    pass


def line_index(text: str, fmt: PolicyFormat, limits: PolicyLimits | None = None) -> LineIndex:
    """Where each path of a policy document is written (1-based lines), for either format.

    Text that does not parse, or breaks ``limits``, gets an index that answers line 1 (or the
    nearest line found) for every path.
    """
    limits = limits or PolicyLimits()
    if fmt == "toml":
        return _TomlLines(text, limits.max_depth)
    try:
        root, loader = compose(text, limits)
    except (yaml.YAMLError, LimitExceeded):
        return _Lines()
    loader.dispose()
    return _YamlLines(root)
