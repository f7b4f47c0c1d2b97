"""Routing configuration files: YAML with line numbers, `${VAR}` from the environment, merged directories.

Loading a file or a directory returns a validated `RoutingConfig`, or raises `ConfigError`
whose `.problems` lists EVERY problem, one line each, as `file:line: path.to.field: message (fix)`.
Line numbers come from the YAML node positions of the file the field was written in, also when
several files are merged. This module only reads and positions: the validation, and every
message about a field, is the pure core's (switchboard.core.config, `config_problems`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from switchboard.core.config import (
    LIST_SECTIONS,
    ConfigError,
    ExactFloat,
    FieldPath,
    Problem,
    RoutingConfig,
    config_problems,
    format_path,
    show_value,
    unknown_field_message,
)

# ---------------------------------------------------------------- YAML reading with positions


# Bounds against hostile or broken files: a YAML alias bomb ("billion laughs") is a few hundred
# bytes whose aliases expand to billions of nodes; every step after composing (positions,
# interpolation, construction, validation) walks the expanded tree, so it is refused first.
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # per file; a config of 10 000 buyers is ~3 MB
MAX_ALIAS_EXPANSION = 100_000  # nodes that aliases may add to a file beyond the nodes written in it


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats remember their text (see ExactFloat), and that notes where aliases are used."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_lines: list[int] = []

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.alias_lines.append(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    f = ExactFloat(value)
    f.text = str(node.value).replace("_", "")
    return f


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

_Key = tuple[str, ...]  # a field path with every part as text, for position lookups


def _key(path: Iterable[str | int]) -> _Key:
    return tuple(str(p) for p in path)


@dataclass
class _Source:
    """Where each field of the merged configuration was written."""

    files: list[str]
    lines: dict[_Key, tuple[str, int]]

    def locate(self, path: FieldPath) -> tuple[str, int | None]:
        key = _key(path)
        for n in range(len(key), 0, -1):
            if key[:n] in self.lines:
                return self.lines[key[:n]]
        return (self.files[0] if self.files else "", None)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _AliasBomb(Exception):
    """The aliases of a composed document expand it past MAX_ALIAS_EXPANSION nodes (or into a cycle)."""


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Raise _AliasBomb when the tree `root` stands for (aliases expanded) has more than `limit` nodes
    beyond the distinct nodes composed.

    Linear in the composed graph: each node's expanded size is computed once (memoized by identity),
    so the check itself never expands anything.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in active:
            raise _AliasBomb("a recursive alias (an anchor used inside itself)")
        active.add(id(node))
        n = 1
        if isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(size(item) for item in node.value)
        active.discard(id(node))
        sizes[id(node)] = n
        if n - len(sizes) > limit:
            raise _AliasBomb(f"aliases expand the document to more than {limit} nodes beyond the {len(sizes)} written")
        return n

    size(root)


def _record(node: yaml.Node, prefix: _Key, file: str, lines: dict[_Key, tuple[str, int]], problems: list[Problem]) -> None:
    """Map every field path below `node` to its line; report duplicate keys, which YAML would silently drop."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            name = str(k.value)
            if name == "<<":  # a merge key: its fields keep their own positions
                continue
            path = (*prefix, name)
            if name in seen:
                problems.append(
                    Problem(
                        file,
                        _line(k),
                        format_path(path),
                        f"duplicate key {name!r}, also at line {seen[name]} (YAML keeps only the last one: merge them into one)",
                    )
                )
            seen[name] = _line(k)
            lines[path] = (file, _line(k))
            _record(v, path, file, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            lines[path] = (file, _line(item))
            _record(item, path, file, lines, problems)


# `${NAME}` or `${NAME:-default}`; `$${` writes a literal `${`. Names as in a shell.
_ENV_REF = re.compile(r"\$(\$)(?=\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
_YAML_STR = "tag:yaml.org,2002:str"


def _interpolate(
    node: yaml.Node, prefix: _Key, file: str, env: Mapping[str, str], problems: list[Problem], seen: set[int] | None = None
) -> None:
    """Substitute environment variables in every string value below `node`, in place, before construction.

    Working on the YAML nodes keeps each problem at its own line. Only scalars that
    YAML already resolved as text are touched, so the result stays text (`"${PORT}"`
    becomes "9100", not 9100); keys are never substituted. A node shared through a
    YAML alias is substituted once (`seen`), so `$${` escapes are not undone.
    """
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _interpolate(v, (*prefix, str(k.value)), file, env, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _interpolate(item, (*prefix, str(i)), file, env, problems, seen)
    elif isinstance(node, yaml.ScalarNode) and node.tag == _YAML_STR and "$" in node.value:

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name, default = m.group(2), m.group(3)
            if name is None:
                problems.append(
                    Problem(
                        file,
                        _line(node),
                        format_path(prefix),
                        "malformed variable reference `${` (write ${NAME} or ${NAME:-default}; $${ for a literal ${)",
                    )
                )
                return m.group(0)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(
                    file,
                    _line(node),
                    format_path(prefix),
                    f"environment variable {name} is not set (set it, or give a default: ${{{name}:-value}})",
                )
            )
            return m.group(0)

        node.value = _ENV_REF.sub(sub, node.value)


def _read(
    file: Path, problems: list[Problem], lines: dict[_Key, tuple[str, int]], env: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Parse one file into its top-level mapping, recording field positions in `lines`; None after reporting why not."""
    name = str(file)
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            problems.append(
                Problem(
                    name,
                    None,
                    "(file)",
                    f"{file.stat().st_size} bytes is more than the {MAX_CONFIG_BYTES} a configuration file may have "
                    "(split it into several files of a directory, or check that this is the right file)",
                )
            )
            return None
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(name, None, "(file)", f"cannot be read: {exc} (check the path and that it is UTF-8 text)"))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(
                Problem(name, 1, "(file)", "empty file (add `version: 1` and at least one section, or remove the file)")
            )
            return None
        if loader.alias_lines:
            try:
                _check_expansion(node, MAX_ALIAS_EXPANSION)
            except _AliasBomb as exc:
                problems.append(
                    Problem(
                        name,
                        loader.alias_lines[0],
                        "(yaml)",
                        f"{exc} (a YAML alias bomb?): write the repeated parts out, or use fewer nested aliases",
                    )
                )
                return None
        local: dict[_Key, tuple[str, int]] = {}
        dup: list[Problem] = []
        _record(node, (), name, local, dup)
        _interpolate(node, (), name, os.environ if env is None else env, dup)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = "; ".join(x for x in (exc.context, exc.problem) if x)
        near = f" near line {line}" if line else ""
        problems.append(
            Problem(name, line, "(yaml)", f"not valid YAML: {what} (check the indentation, colons and quoting{near})")
        )
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(name, None, "(yaml)", f"not valid YAML: {exc} (check the indentation, colons and quoting)"))
        return None
    finally:
        loader.dispose()
    problems.extend(dup)
    if data is None:
        problems.append(
            Problem(name, _line(node), "(file)", "empty file (add `version: 1` and at least one section, or remove the file)")
        )
        return None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(
            Problem(
                name,
                _line(node),
                "(top level)",
                "the top level must be a mapping (start with `version: 1`, then sections such as buyers: and campaigns:)",
            )
        )
        return None
    lines.update(local)
    return data


def _merge(files: list[Path], problems: list[Problem], env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], _Source]:
    """Concatenate the list sections of every file; other top-level keys may be set in one file only."""
    merged: dict[str, Any] = {}
    source = _Source([str(f) for f in files], {})
    set_in: dict[str, str] = {}
    for f in files:
        local: dict[_Key, tuple[str, int]] = {}
        data = _read(f, problems, local, env)
        if data is None:
            continue
        name = str(f)
        for key, value in data.items():
            key = str(key)
            line = local.get((key,), (name, None))[1]
            if key in LIST_SECTIONS:
                if value is None:
                    continue  # `buyers:` with every entry commented out
                if not isinstance(value, list):
                    problems.append(
                        Problem(
                            name,
                            line,
                            key,
                            f"expected a list, got {show_value(value)} (write one `- id: ...` entry per item under {key}:)",
                        )
                    )
                    continue
                offset = len(merged.setdefault(key, []))
                merged[key].extend(value)
                # re-key this file's positions from its own list indexes to the merged ones
                for path, pos in local.items():
                    if path[0] == key and len(path) > 1:
                        source.lines[(key, str(int(path[1]) + offset), *path[2:])] = pos
                source.lines.setdefault((key,), (name, line or 0))
            elif key not in RoutingConfig.model_fields:
                problems.append(Problem(name, line, key, unknown_field_message(key, list(RoutingConfig.model_fields))))
            elif key == "version":
                if isinstance(value, bool) or value != 1:
                    problems.append(Problem(name, line, "version", f"version {value!r} is not supported (set `version: 1`)"))
            elif key in set_in and merged.get(key) != value:
                problems.append(Problem(name, line, key, f"already set in {set_in[key]} (set {key} in one file only)"))
            else:
                merged[key] = value
                set_in[key] = f"{name}:{line}"
                for path, pos in local.items():
                    if path[0] == key:
                        source.lines[path] = pos
    return merged, source


# ---------------------------------------------------------------- loading


def _files(path: Path) -> list[Path] | Problem:
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file())
        if not files:
            return Problem(str(path), None, "(directory)", "no *.yaml or *.yml files here (add one, or pass a file)")
        return files
    if path.is_file():
        return [path]
    return Problem(str(path), None, "(file)", "no such file or directory (pass a YAML file or a directory of them)")


def check_config(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[RoutingConfig | None, list[Problem]]:
    """Validate `path` and return (config, []) or (None, every problem in file and line order).

    `${NAME}` / `${NAME:-default}` in string values are read from `env` (default: os.environ).
    """
    path = Path(path)
    files = _files(path)
    if isinstance(files, Problem):
        return None, [files]
    problems: list[Problem] = []
    merged, source = _merge(files, problems, env)
    config, found = config_problems(merged, source.locate)
    problems.extend(found)
    if not problems:
        return config, []
    order = {f: i for i, f in enumerate(source.files)}
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (order.get(p.file, -1), p.line or 0))
    return None, unique


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Load one YAML file or every *.yaml/*.yml file of a directory (list sections are concatenated in file-name order).

    `env` (default: os.environ) supplies the `${NAME}` variables of string values.
    """
    config, problems = check_config(path, env)
    if problems or config is None:
        raise ConfigError(problems)
    return config
