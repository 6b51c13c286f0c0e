"""Keep the user docs honest: their examples load, their errors are real, their commands exist.

Code blocks in ``docs/policy.md`` and ``docs/getting-started.md`` are tagged with an HTML comment
on the line before the fence:

- ``<!-- example: valid -->`` a policy (YAML or TOML) that must load; ``id=NAME`` groups blocks
  that must load to the same policy (the YAML and TOML full examples);
- ``<!-- example: invalid file=NAME -->`` a policy that must fail, followed by a ``console``
  block ``$ goodwill validate NAME`` and its exact output;
- ``<!-- output: exact -->`` a ``console`` block whose ``$ goodwill …`` command, run from the
  repository root, prints exactly the lines below it.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from scheduler.core import policy as policy_module
from scheduler.core.model import BusyRules
from scheduler.core.policy import load_policy_text, policy_to_data
from scheduler.entrypoints.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "policy.md", REPO / "docs" / "getting-started.md")
POLICY_DOC = DOCS[0]

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*(example|output):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    tag: str | None  # "example" or "output"
    attrs: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"

    def attr(self, name: str) -> str | None:
        prefix = f"{name}="
        return next((a[len(prefix) :] for a in self.attrs if a.startswith(prefix)), None)


def _blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i].strip())
        if opening is None:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        # Indented blocks (inside list items) are dedented by the fence's indentation.
        indent = len(lines[i]) - len(lines[i].lstrip())
        body = "\n".join(line[indent:] for line in lines[i + 1 : j]) + "\n"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        tag: str | None = None
        attrs: tuple[str, ...] = ()
        marker = _MARKER.match(lines[k].strip()) if k >= 0 else None
        if marker is not None:
            tag, attrs = marker.group(1), tuple(marker.group(2).split())
        blocks.append(Block(doc, start + 1, opening.group(1), body, tag, attrs))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for doc in DOCS for b in _blocks(doc)]
VALID = [b for b in ALL_BLOCKS if b.tag == "example" and "valid" in b.attrs]
INVALID = [b for b in ALL_BLOCKS if b.tag == "example" and "invalid" in b.attrs]
EXACT = [b for b in ALL_BLOCKS if b.tag == "output" and "exact" in b.attrs]


def _fmt(block: Block) -> typing.Literal["yaml", "toml"]:
    assert block.lang in ("yaml", "toml"), f"{block.where}: policy blocks are yaml or toml"
    return "yaml" if block.lang == "yaml" else "toml"


def test_the_docs_have_tagged_examples() -> None:
    # Guards the tests below against a renamed marker silently selecting nothing.
    assert len(VALID) >= 4
    assert {b.lang for b in VALID} == {"yaml", "toml"}
    assert len(INVALID) >= 5
    assert len(EXACT) >= 2
    assert {b.doc for b in VALID} == set(DOCS)


@pytest.mark.parametrize("block", VALID, ids=[b.where for b in VALID])
def test_valid_examples_load(block: Block) -> None:
    policy = load_policy_text(block.text, source=block.where, fmt=_fmt(block))
    assert policy.owner.email


def test_examples_with_one_id_describe_the_same_policy() -> None:
    groups: dict[str, list[Block]] = {}
    for block in VALID:
        name = block.attr("id")
        if name is not None:
            groups.setdefault(name, []).append(block)
    assert groups, "expected the YAML and TOML full examples to share an id"
    for name, blocks in groups.items():
        assert len(blocks) >= 2, f"id={name} names a single block"
        loaded = [
            policy_to_data(load_policy_text(b.text, source=b.where, fmt=_fmt(b))) for b in blocks
        ]
        for block, data in zip(blocks[1:], loaded[1:], strict=True):
            assert data == loaded[0], f"{block.where} differs from {blocks[0].where}"


def _fields_set(model: BaseModel) -> set[str]:
    """Field names written in the document, in ``model`` and every section below it."""
    names = set(model.model_fields_set)
    for name in model.model_fields_set:
        value = getattr(model, name)
        items = list(value.values()) if isinstance(value, dict) else value
        for item in items if isinstance(items, list) else [value]:
            if isinstance(item, BaseModel):
                names |= _fields_set(item)
    return names


# Not in the full example on purpose: ``url`` is for CalDAV and the example uses Google;
# ``calendar_id`` is accepted but not used by any connector yet (docs/policy.md says so).
_NOT_IN_FULL_EXAMPLE = {"url", "calendar_id"}


def test_the_full_example_sets_every_field() -> None:
    # The "full example" promises every field; a field added to the model must be added there.
    full = next(b for b in VALID if b.attr("id") == "full" and b.lang == "yaml")
    loaded = load_policy_text(full.text, source=full.where, fmt="yaml")
    busy_knobs = set(yaml.safe_load(full.text)["availability"]["busy"])  # a dataclass, not a model
    written = _fields_set(loaded) | busy_knobs
    missing = sorted(_field_names() - written - _NOT_IN_FULL_EXAMPLE)
    assert not missing, f"the full YAML example does not set: {missing}"


def _console(block: Block) -> tuple[list[str], str]:
    assert block.lang == "console", f"{block.where}: expected a console block"
    first, _, rest = block.text.partition("\n")
    assert first.startswith("$ "), f"{block.where}: a console block starts with '$ command'"
    argv = shlex.split(first[2:])
    assert Path(argv[0]).name == "goodwill", f"{block.where}: not a goodwill command"
    return argv[1:], rest


@pytest.mark.parametrize("block", INVALID, ids=[b.where for b in INVALID])
def test_invalid_examples_print_the_documented_errors(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = block.attr("file")
    assert name, f"{block.where}: invalid examples name their file (file=NAME)"
    assert name.endswith(f".{block.lang}") or (block.lang == "yaml" and name.endswith(".yml"))
    following = ALL_BLOCKS[ALL_BLOCKS.index(block) + 1]
    argv, expected = _console(following)
    assert argv == ["validate", name], f"{following.where}: expected '$ goodwill validate {name}'"
    (tmp_path / name).write_text(block.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(argv, out=out, err=out) == 2
    assert out.getvalue() == expected


@pytest.mark.parametrize("block", EXACT, ids=[b.where for b in EXACT])
def test_exact_outputs_are_what_the_command_prints(
    block: Block, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, expected = _console(block)
    monkeypatch.chdir(REPO)
    for name in ("GOODWILL_CALENDARS_DIR", "GOODWILL_DATA_DIR", "GOODWILL_POLICY_DIR"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    assert main(argv, out=out, err=out) == 0
    assert out.getvalue() == expected


def _models() -> list[type[BaseModel]]:
    return [
        obj
        for name in policy_module.__all__
        if isinstance(obj := getattr(policy_module, name), type) and issubclass(obj, BaseModel)
    ]


def _field_names() -> set[str]:
    names = {f for model in _models() for f in model.model_fields}
    names |= {f.name for f in dataclasses.fields(BusyRules)}
    return names


def test_every_policy_field_is_documented() -> None:
    assert len(_models()) >= 9  # Policy and its sections; guards against an empty walk
    text = POLICY_DOC.read_text(encoding="utf-8")
    missing = sorted(n for n in _field_names() if f"`{n}`" not in text)
    assert not missing, f"docs/policy.md does not document: {missing}"


def _literal_values(annotation: object) -> set[str]:
    found: set[str] = set()
    if typing.get_origin(annotation) is typing.Literal:
        found |= {str(v) for v in typing.get_args(annotation)}
    for arg in typing.get_args(annotation):
        found |= _literal_values(arg)
    return found


def test_every_choice_is_documented() -> None:
    text = POLICY_DOC.read_text(encoding="utf-8")
    values = {
        v
        for model in _models()
        for f in model.model_fields.values()
        for v in _literal_values(f.annotation)
    }
    assert {"google", "lunch", "propose", "teams"} <= values
    missing = sorted(v for v in values if f"`{v}`" not in text)
    assert not missing, f"docs/policy.md does not mention the choices: {missing}"


_COMMAND = re.compile(r"(?<![\w.-])goodwill ([a-z][a-z-]*)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _documented_commands(doc: Path) -> set[str]:
    """Subcommands named in inline code, shell blocks, and console command lines."""
    text = doc.read_text(encoding="utf-8")
    found: set[str] = set()
    for block in _blocks(doc):
        if block.lang in ("sh", "bash", "shell"):
            lines = [line.split("#", 1)[0] for line in block.text.splitlines()]
        elif block.lang == "console":
            lines = [line[2:] for line in block.text.splitlines() if line.startswith("$ ")]
        else:
            continue
        for line in lines:
            found |= set(_COMMAND.findall(line))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in _INLINE_CODE.findall(prose):
        found |= set(_COMMAND.findall(span))
    return found


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:  # argparse keeps subparsers only here
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            return set(choices)
    raise AssertionError("goodwill has no subcommands")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_documented_subcommand_exists(doc: Path) -> None:
    documented = _documented_commands(doc)
    assert "validate" in documented
    unknown = sorted(documented - _subcommands())
    assert not unknown, f"{doc.name} names commands goodwill does not have: {unknown}"


def test_the_command_scan_would_notice_a_made_up_command(tmp_path: Path) -> None:
    # The scanner above must see commands in all three places it looks, and skip output lines.
    sample = (
        "Run `goodwill frobnicate`.\n\n```sh\ngoodwill twiddle x  # not goodwill comment\n```\n"
        "\n```console\n$ goodwill poke\nan open goodwill meeting\n```\n"
    )
    path = tmp_path / "sample.md"
    path.write_text(sample, encoding="utf-8")
    assert _documented_commands(path) == {"frobnicate", "twiddle", "poke"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    prose = re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", prose, re.M)}


def test_slugs_follow_github() -> None:
    assert _slug("availability.busy — which events block time") == (
        "availabilitybusy--which-events-block-time"
    )
    assert _slug("4. Preferred windows, then the rest of the day") == (
        "4-preferred-windows-then-the-rest-of-the-day"
    )
    assert _slug("stakeholder_defaults") == "stakeholder_defaults"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_links_to_docs_and_anchors_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if "://" in link:
            continue
        target, _, anchor = link.partition("#")
        path = doc if not target else (doc.parent / target).resolve()
        assert path.is_file(), f"{doc.name}: broken link {link}"
        if anchor:
            assert anchor in _anchors(path), f"{doc.name}: no heading for #{anchor} in {path.name}"
