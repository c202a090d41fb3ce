"""YAML text as plain Python values, with the line each value was written on.

Made for files people write by hand and want told, by line, what is wrong with them:

- ``read_yaml`` composes the text into PyYAML's nodes (which carry their position) and turns them into
  dicts, lists and scalars itself, recording the 1-based line of every mapping key and sequence item under
  its path (``("rows", 0, "panels", 1, "type")``). A caller that validates the plain values maps an
  error's location back to a line with ``YamlDocument.line_of``.
- Scalars follow YAML 1.2's core schema, not PyYAML's YAML 1.1 one: only ``true``/``false`` are booleans
  (``no``, ``on`` and ``off`` stay text: the "Norway problem"), ``010`` is ten, ``1e3`` is a number.
  Mapping keys are always the text as written.
- Aliases (``*name``), tags other than the core ones, and non-scalar keys are refused: a dashboard file
  needs none of them, and aliases would let a small file expand into a huge one.
- A syntax error raises ``YamlSyntaxError`` with the line where the mistake most likely is, in plain
  words. A duplicate key is not fatal: it is listed in ``YamlDocument.issues`` (the first value is kept),
  so that a caller can set aside only the part of the document it belongs to.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

YamlPath = tuple[str | int, ...]
"""Where a value sits: mapping keys (as written) and sequence indexes from the document's root."""

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = f"{_CORE}map", f"{_CORE}seq"
_BARE_HEX = re.compile(r":\s+#[0-9a-fA-F]{3,8}\b")


class YamlSyntaxError(ValueError):
    """Text that is not one valid YAML document; ``line`` is 1-based, ``reason`` in plain words."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class YamlIssue:
    """A mistake that does not stop the reading: where it is and what it is."""

    path: YamlPath
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class YamlDocument:
    value: object
    """dicts (keys are ``str``), lists, ``str``, ``int``, ``float``, ``bool`` and ``None``."""
    lines: Mapping[YamlPath, int]
    """The line of each mapping key and each sequence item, by path; the root's under ``()``."""
    issues: tuple[YamlIssue, ...]

    def line_of(self, path: YamlPath) -> int:
        """The line of ``path``, or of the nearest enclosing value that has one (a missing key's mapping)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


class _CoreComposer(Reader, Scanner, Parser, Composer, BaseResolver):
    """PyYAML's reader, scanner, parser and composer, with the core schema's implicit tags and no
    aliases."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            raise YamlSyntaxError(line, "aliases (*name) are not supported: write the value out")
        return super().compose_node(parent, index)


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema).
for _tag, _pattern, _first in (
    (_NULL, r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    (_BOOL, r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    (_INT, r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        _FLOAT,
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN",
        list("-+.0123456789"),
    ),
):
    _CoreComposer.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), _first)


def read_yaml(text: str) -> YamlDocument:
    """The one document in ``text`` as plain values with their lines; ``YamlSyntaxError`` when it is not
    valid YAML (or uses what this reader refuses). An empty text is the value None."""
    composer = _CoreComposer(text) if _printable(text) else None
    if composer is None:
        raise _unprintable(text)
    try:
        root = composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text) from None
    except RecursionError:
        raise YamlSyntaxError(1, "the file nests lists or mappings too deeply") from None
    finally:
        composer.dispose()
    if root is None:
        return YamlDocument(None, {(): 1}, ())
    walk = _Walk()
    try:
        value = walk.value(root, ())
    except RecursionError:
        raise YamlSyntaxError(1, "the file nests lists or mappings too deeply") from None
    walk.lines[()] = _line(root)
    return YamlDocument(value, walk.lines, tuple(walk.issues))


class _Walk:
    """Nodes to values, collecting lines and issues on the way."""

    def __init__(self) -> None:
        self.lines: dict[YamlPath, int] = {}
        self.issues: list[YamlIssue] = []

    def value(self, node: Node, path: YamlPath) -> object:
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            _expect_tag(node, _SEQ, "a list")
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = _line(item)
                items.append(self.value(item, (*path, index)))
            return items
        assert isinstance(node, MappingNode)
        _expect_tag(node, _MAP, "a mapping")
        mapping: dict[str, object] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise YamlSyntaxError(_line(key_node), "a key must be a plain name, not a list or mapping")
            key = str(key_node.value)
            if key in mapping:
                line = _line(key_node)
                first = self.lines[(*path, key)]
                message = (
                    f"key '{key}' appears twice in one mapping (first on line {first}); the first is used"
                )
                self.issues.append(YamlIssue((*path, key), line, message))
                continue
            self.lines[(*path, key)] = _line(key_node)
            mapping[key] = self.value(value_node, (*path, key))
        return mapping


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _expect_tag(node: Node, tag: str, what: str) -> None:
    if node.tag != tag:
        raise YamlSyntaxError(
            _line(node), f"tag {_shown(node.tag)} is not supported here: write {what} plainly"
        )


def _scalar(node: ScalarNode) -> object:
    text: str = node.value
    tag = node.tag
    try:
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            return _integer(text)
        if tag == _FLOAT:
            return _float(text)
    except ValueError:
        raise YamlSyntaxError(_line(node), f"{text!r} is not a valid {tag.removeprefix(_CORE)}") from None
    raise YamlSyntaxError(_line(node), f"tag {_shown(tag)} is not supported: write the value plainly")


def _shown(tag: str) -> str:
    """A tag as it is written: ``!!set`` rather than ``tag:yaml.org,2002:set``."""
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _integer(text: str) -> int:
    unsigned = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if unsigned.startswith("0o"):
        return sign * int(unsigned[2:], 8)
    if unsigned.startswith("0x"):
        return sign * int(unsigned[2:], 16)
    return sign * int(unsigned, 10)


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def _printable(text: str) -> bool:
    return Reader.NON_PRINTABLE.search(text) is None


def _unprintable(text: str) -> YamlSyntaxError:
    found = Reader.NON_PRINTABLE.search(text)
    assert found is not None
    line = text.count("\n", 0, found.start()) + 1
    return YamlSyntaxError(line, f"character U+{ord(found.group()):04X} is not allowed in a YAML file")


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> YamlSyntaxError:
    """The line where the mistake most likely is, and what it is, from PyYAML's marks and words.

    PyYAML reports where it noticed the mistake (``problem_mark``), which for an unclosed quote or bracket,
    or a key without ``:``, is lines after the place to fix; its ``context_mark`` then points at that
    place. A hex colour written bare (``{color: #f00}``) is the commonest cause in a dashboard file: after
    a space, ``#`` starts a comment, which here swallows the closing ``}``."""
    problem = exc.problem or "not valid YAML"
    context = exc.context or ""
    at = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
    start = exc.context_mark.line + 1 if exc.context_mark is not None else at
    lines = text.splitlines()
    for line in range(min(start, at - 1), at + 1):
        if 0 < line <= len(lines) and _BARE_HEX.search(lines[line - 1]):
            return YamlSyntaxError(
                line, "a colour written #... after a space starts a comment: put it in quotes"
            )
    if context.startswith("while scanning a simple key"):
        return YamlSyntaxError(start, "expected 'key: value' here, but there is no ':'")
    if context.startswith("while scanning a quoted scalar"):
        return YamlSyntaxError(start, "a quote opened here is never closed")
    if context.startswith("while parsing a flow") and "<stream end>" in problem:
        return YamlSyntaxError(start, "a '[' or '{' opened here is never closed")
    if context.startswith("expected a single document"):
        return YamlSyntaxError(at, "a second document starts here (---): a dashboard file is one document")
    if context.startswith("found duplicate anchor"):
        return YamlSyntaxError(at, "anchor (&name) used twice: write the value out")
    if problem.startswith("found character '\\t'"):
        return YamlSyntaxError(at, "a tab: YAML indents with spaces only")
    if problem == "mapping values are not allowed here":
        reason = (
            "a ':' where none can be: is a key on this line or the one before missing its ':', or does a "
            "value here contain ': ' and need quotes?"
        )
        return YamlSyntaxError(at, reason)
    if problem.startswith("expected <block end>"):
        return YamlSyntaxError(at, "this line's indentation does not match the lines above it")
    where = f" ({context}, from line {start})" if context and start != at else ""
    return YamlSyntaxError(at, f"not valid YAML: {problem}{where}")
