"""Load YAML as plain data and remember the line of every value, so errors can name it.

Only plain YAML is accepted (mappings, lists, strings, numbers, booleans, null): a tag that
would construct an object is an error, so a protocol can never run code.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class YamlProblem(Exception):
    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(message)


def load_with_lines(path: Path) -> tuple[object, dict[tuple, int]]:
    """Return (data, lines) where lines maps a key path such as ("phases", "test", "time_limit")
    to its 1-based line number. Raises YamlProblem for syntax errors and unsafe content."""
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = ""
        if e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            where = f" ({e.context} on line {e.context_mark.line + 1})"
        raise YamlProblem(mark.line + 1 if mark else 1, f"YAML syntax: {e.problem or e}{where}") from None
    except yaml.YAMLError as e:
        raise YamlProblem(1, f"YAML syntax: {e}") from None
    except RecursionError:
        raise YamlProblem(1, "nested too deeply (or a recursive anchor): protocols are a few levels deep") from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlProblem(1, "the file is empty")
    lines: dict[tuple, int] = {}
    constructor = yaml.SafeLoader("")
    try:
        data = _build(node, (), lines, constructor)
    except RecursionError:
        raise YamlProblem(1, "nested too deeply (or a recursive anchor): protocols are a few levels deep") from None
    return data, lines


def _build(node, path: tuple, lines: dict, constructor) -> object:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _COLLECTION_TAGS:
        raise YamlProblem(node.start_mark.line + 1,
                          f"unsupported YAML tag {node.tag!r}: protocols hold plain data only")
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(key_node.start_mark.line + 1, "mapping keys must be plain names")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(key_node.start_mark.line + 1,
                                  "'<<' merge keys are not supported; write the fields out")
            key = _scalar(key_node, constructor)
            if not isinstance(key, (str, int)):
                raise YamlProblem(key_node.start_mark.line + 1, f"mapping key {key!r} must be a name")
            key = str(key)
            if key in out:
                raise YamlProblem(key_node.start_mark.line + 1,
                                  f"{'.'.join(map(str, path + (key,)))}: duplicate key")
            out[key] = _build(value_node, path + (key,), lines, constructor)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (i,), lines, constructor) for i, v in enumerate(node.value)]
    return _scalar(node, constructor)


_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}


def _scalar(node, constructor) -> object:
    if node.tag not in _PLAIN_TAGS:
        raise YamlProblem(node.start_mark.line + 1,
                          f"unsupported YAML tag {node.tag!r}: protocols hold plain data only")
    return constructor.construct_object(node)
