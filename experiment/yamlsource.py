"""Load YAML as plain data and remember the line of every value, so errors can name it.

Only plain YAML is accepted (mappings, lists, strings, numbers, booleans, null): a tag that
would construct an object is an error, so a protocol can never run code.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.composer import Composer
from yaml.resolver import Resolver

from experiment.safeio import MB, FileRefused, read_regular

MAX_BYTES = 1 * MB          # protocols are a few kB; a larger file is a mistake or an attack
MAX_NODES = 5_000           # values as written (the shipped protocols have about 230)
MAX_DEPTH = 50              # nesting levels (the shipped protocols have 6)
MAX_VALUES = 50_000         # values after alias expansion ("billion laughs" stops here)


class YamlProblem(Exception):
    def __init__(self, line: int, message: str, field: str = "(file)"):
        self.line, self.field = line, field
        super().__init__(message)


def read_source(path: Path) -> bytes:
    """The file's bytes: a regular file of at most MAX_BYTES, else YamlProblem (line 1)."""
    try:
        return read_regular(path, MAX_BYTES, "protocol file")
    except FileRefused as e:
        hint = " (check the path)" if "not found" in e.reason else ""
        raise YamlProblem(1, f"protocol file {e.reason}{hint}") from None


def decode(raw: bytes) -> str:
    """UTF-8 text (a UTF-8 BOM is allowed); YamlProblem at the line of the first bad byte."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        kind = (" (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:200]
                else "")
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise YamlProblem(line, f"not UTF-8 text: byte {raw[e.start]:#04x} at column {column}{kind}; "
                                "save the protocol as UTF-8") from None
    bad = _CONTROL.search(text)
    if bad:
        hint = " (a file saved as UTF-16? save it as UTF-8)" if bad.group() == "\x00" else ""
        raise YamlProblem(text.count("\n", 0, bad.start()) + 1,
                          f"control character {bad.group()!r} in the text; remove it (only tab and line breaks "
                          f"are allowed){hint}")
    return text


_CONTROL_IN_VALUE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def load_with_lines(path: Path, raw: bytes | None = None) -> tuple[object, dict[tuple, int]]:
    """Return (data, lines) where lines maps a key path such as ("phases", "test", "time_limit")
    to its 1-based line number. Raises YamlProblem for syntax errors and unsafe content, files
    over MAX_BYTES and alias expansion beyond MAX_VALUES values. `raw`: the file's bytes, if
    the caller read them already (with `read_source`)."""
    text = decode(read_source(path) if raw is None else raw)
    try:
        try:
            loader = _Loader(text)
            node = loader.get_single_node()
        except yaml.MarkedYAMLError:
            if _Loader is _PyLoader or len(text) > 64 * 1024:
                raise
            loader.dispose()
            loader = _PyLoader(text)        # PyYAML's own messages say more than libyaml's
            node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if "nesting depth" in str(e.problem):          # libyaml's own limit
            raise YamlProblem(mark.line + 1 if mark else 1,
                              "nested too deeply (more than 50 levels): protocols are a few levels deep") from None
        where = ""
        if e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
            where = f" ({e.context} on line {e.context_mark.line + 1})"
        raise YamlProblem(mark.line + 1 if mark else 1, f"YAML syntax: {e.problem or e}{where}") from None
    except yaml.reader.ReaderError as e:
        raise YamlProblem(text.count("\n", 0, max(0, e.position)) + 1,
                          f"character {e.character!r} is not allowed in YAML; remove it") from None
    except yaml.YAMLError as e:
        raise YamlProblem(1, f"YAML syntax: {e}") from None
    except RecursionError:
        raise YamlProblem(1, "nested too deeply (or a recursive anchor): protocols are a few levels deep") from None
    finally:
        if "loader" in locals():
            loader.dispose()
    if node is None:
        raise YamlProblem(1, "the file is empty")
    lines: dict[tuple, int] = {}
    constructor = yaml.SafeLoader("")
    constructor.lhlab_budget = MAX_VALUES
    try:
        data = _build(node, (), lines, constructor)
    except RecursionError:
        raise YamlProblem(1, "nested too deeply (or a recursive anchor): protocols are a few levels deep") from None
    return data, lines


class _Budget:
    """Composer hook: refuse more than MAX_NODES nodes or MAX_DEPTH levels while composing, so a
    large file of many small values stops in milliseconds instead of being built first."""

    lhlab_nodes = 0
    lhlab_depth = 0

    def compose_node(self, parent, index):
        self.lhlab_nodes += 1
        self.lhlab_depth += 1
        try:
            if self.lhlab_nodes > MAX_NODES:
                raise YamlProblem(self.peek_event().start_mark.line + 1,
                                  f"more than {MAX_NODES} values; protocols hold a few hundred: is this the right file?")
            if self.lhlab_depth > MAX_DEPTH:
                raise YamlProblem(self.peek_event().start_mark.line + 1,
                                  "nested too deeply (more than 50 levels): protocols are a few levels deep")
            return Composer.compose_node(self, parent, index)
        finally:
            self.lhlab_depth -= 1


try:       # libyaml scans and parses (1 MB in milliseconds); the nodes are composed in Python, counted
    from yaml._yaml import CParser

    class _Loader(_Budget, CParser, Composer, Resolver):
        def __init__(self, stream):
            CParser.__init__(self, stream)
            Composer.__init__(self)
            Resolver.__init__(self)

        get_single_node = Composer.get_single_node
        check_node = Composer.check_node
        get_node = Composer.get_node
        compose_document = Composer.compose_document
except ImportError:          # pragma: no cover - PyYAML without libyaml
    _Loader = None


class _PyLoader(_Budget, yaml.SafeLoader):
    pass


_Loader = _Loader or _PyLoader


def _build(node, path: tuple, lines: dict, constructor) -> object:
    lines[path] = node.start_mark.line + 1
    constructor.lhlab_budget -= 1
    if constructor.lhlab_budget < 0:
        raise YamlProblem(node.start_mark.line + 1,
                          f"the file expands to more than {MAX_VALUES} values (aliases such as *name repeat "
                          "whole blocks); protocols are small: write the values out")
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
    value = _scalar(node, constructor)
    if isinstance(value, str):
        bad = _CONTROL_IN_VALUE.search(value)     # written as an escape such as "\0" or "\e"
        if bad:
            raise YamlProblem(node.start_mark.line + 1,
                              f"control character {bad.group()!r} in the text; remove it (texts may hold "
                              "line breaks and tabs only)", ".".join(map(str, path)) or "(top)")
    return value


_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}


def _scalar(node, constructor) -> object:
    if node.tag not in _PLAIN_TAGS:
        raise YamlProblem(node.start_mark.line + 1,
                          f"unsupported YAML tag {node.tag!r}: protocols hold plain data only")
    try:
        return constructor.construct_object(node)
    except (ValueError, OverflowError) as e:     # e.g. an integer of more than 4300 digits
        raise YamlProblem(node.start_mark.line + 1, f"value cannot be read ({e})"[:200]) from None
