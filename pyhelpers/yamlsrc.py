"""YAML loading that remembers where each key came from, so errors can name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pyhelpers.errors import BadInput

Loc = tuple[Any, ...]


class SourcedYaml:
    """A parsed YAML document plus the line number of every mapping key and list item."""

    def __init__(self, data: Any, lines: dict[Loc, int], source: str):
        self.data = data
        self.lines = lines
        self.source = source

    def line_of(self, loc: Loc) -> int | None:
        """Line of ``loc`` or of its nearest ancestor that exists in the file."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())

    def error(self, loc: Loc, message: str) -> BadInput:
        field = dotted(loc)
        text = f"{field}: {message}" if field else message
        return BadInput(text, source=self.source, line=self.line_of(loc))


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# An alias re-uses a node: harmless once, but nested aliases multiply (a 337-byte "billion laughs"
# document expands to 10^9 nodes). Anything that expands beyond this many nodes is refused.
MAX_EXPANDED_NODES = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` becomes once every alias is expanded (each shared node counted once per use,
    computed once: linear in the document, however deep the aliases nest)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias (anchor used inside itself) counts as one node, not forever
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(item, memo) for item in node.value)
    memo[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
    return memo[id(node)]


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], seen: set[int]) -> None:
    """Record the line of every key and item. A node reached again through an alias is not walked again:
    its keys keep the lines where the anchor wrote them, and the walk stays linear in the document."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged += value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                continue
            key = key_node.value
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines, seen)
        for source in merged:  # `<<: *anchor`: explicit keys above win, merged ones point into the anchor
            if isinstance(source, yaml.MappingNode):
                for key_node, _ in source.value:
                    lines.setdefault(loc + (key_node.value,), key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines, seen)


# libyaml's parser when PyYAML has it (about 10x faster on large documents); same constructor.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_BaseLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one).

    Merge keys (``<<: *anchor``) are YAML 1.1 and PyYAML's SafeLoader supports them: keys written
    next to ``<<`` override merged ones, so only the explicitly written keys must be unique.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> SourcedYaml:
    try:
        loader = _UniqueKeyLoader(text)
        try:
            node = loader.get_single_node()  # parsed once: the same nodes give lines and data
            # Aliases need anchors ('&'): without one no node is shared and nothing can expand.
            if node is not None and "&" in text and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise BadInput(f"aliases expand to more than {MAX_EXPANDED_NODES} values (an alias bomb?); "
                               "write the values out or use fewer nested aliases", source=source)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        context = ""
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            context = f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise BadInput(f"invalid YAML: {exc.problem or exc}{context}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise BadInput(f"invalid YAML: {exc}", source=source) from None
    except RecursionError:
        raise BadInput("invalid YAML: nested too deeply", source=source) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines, set())
    return SourcedYaml(data, lines, source)


def safe_data(text: str, source: str) -> Any:
    """Just the data of a small YAML file (``.dvc`` files, MLmodel, project maps), with the same limits."""
    return parse_yaml(text, source).data


def load_yaml_file(path: str | Path) -> SourcedYaml:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise BadInput("is a directory, expected a YAML file", source=str(path)) from None
    except UnicodeDecodeError:
        raise BadInput("not a UTF-8 text file", source=str(path)) from None
    except OSError as exc:  # permission denied, a name too long, a loop of symlinks
        shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
        raise BadInput(f"cannot read: {exc.strerror or exc}", source=shown) from None
    return parse_yaml(text, str(path))
