"""Load YAML keeping the line of every key, so config errors can name their line."""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]
# Values an alias (*name) may add beyond those written in the file: a "billion laughs" file
# of a few hundred bytes expands to billions; a real config reuses a block a few times.
MAX_ALIAS_EXPANSION = 100_000


class YamlSyntaxError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML text; return the plain data and a map from key path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML syntax error: {exc}") from exc
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    budget = [_distinct_nodes(node) + MAX_ALIAS_EXPANSION]
    return _build(node, (), lines, budget), lines


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    """Name the line of what was left open (an unclosed bracket) and where the parser gave up."""
    problem = exc.problem or str(exc)
    if exc.context:
        problem = f"{exc.context}, {problem}"
    opened, gave_up = exc.context_mark, exc.problem_mark
    if opened is not None and gave_up is not None and opened.line != gave_up.line:
        return YamlSyntaxError(
            opened.line + 1,
            f"YAML syntax error: {problem} (opened at line {opened.line + 1}, "
            f"the parser gave up at line {gave_up.line + 1})",
        )
    mark = gave_up or opened
    return YamlSyntaxError(mark.line + 1 if mark else 1, f"YAML syntax error: {problem}")


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlSyntaxError(
            node.start_mark.line + 1,
            f"YAML aliases (*name) expand to more than {MAX_ALIAS_EXPANSION:,} values: "
            "refused (write the values out, or reuse fewer)",
        )
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(
                    key_node.start_mark.line + 1, "YAML syntax error: a key must be plain text"
                )
            key = yaml.SafeLoader.construct_object(_loader(), key_node, deep=True)
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, budget) for i, item in enumerate(node.value)]
    return yaml.SafeLoader.construct_object(_loader(), node, deep=True)


_LOADER: yaml.SafeLoader | None = None


def _loader() -> yaml.SafeLoader:
    global _LOADER
    if _LOADER is None:
        _LOADER = yaml.SafeLoader("")
    return _LOADER


def line_for(lines: dict[Path, int], loc: Path) -> int:
    """The line of the longest prefix of `loc` that has one (1 when nothing matches)."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def format_path(loc: Path) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
