"""Recipe files: YAML -> :class:`Pipeline`, validated completely before any work starts.

A recipe names the input, an ordered list of steps with parameters and the output::

    input:  {paths: ["data/*.jsonl.gz"], format: jsonl, text_field: text, id_field: id}
    steps:
      - normalize
      - gopher_quality: {min_words: 50}
    output: {path: out/run1, format: parquet}

A step is a registered name (``gristmill steps`` lists them) or a user class: ``mypkg.steps:MyFilter``
from an installed package (or one on ``PYTHONPATH``), or ``./my_steps.py:MyFilter`` from an explicit file.
Every error names the recipe file and line.

A recipe that names a user step runs that code: treat a recipe like a script and run only recipes you
trust. ``python -m gristmill`` does not import modules from the current folder by accident (see
``gristmill/__main__.py``), so a user step comes only from where the recipe says.

Loading is bounded: the file is at most :data:`MAX_RECIPE_BYTES`, YAML aliases may not expand it past
:data:`MAX_RECIPE_VALUES` values nor refer to themselves, and only plain YAML tags are accepted
(``!!python/...`` and custom tags are refused with their line).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gristmill.data.inputs import FORMATS, InputSpec
from gristmill.data.pipeline import STEP_REGISTRY, Step
from gristmill.data.run import OutputSpec, Pipeline
from gristmill.errors import GristmillError


def load_builtin_steps() -> dict[str, type[Step]]:
    """Import the modules whose ``@register`` adds the built-in steps; return every registered step.

    Imported here, when a recipe is read, so that the step base classes in ``pipeline`` never import
    their own plugins.
    """
    from gristmill.data.dedup import decontaminate, exact, lines, minhash  # noqa: F401
    from gristmill.data.select import dsir  # noqa: F401
    from gristmill.data.steps import (  # noqa: F401
        basic,
        blocklist,
        boilerplate,
        classifier,
        language,
        normalize,
        perplexity,
        pii,
        quality,
        spam,
    )

    return STEP_REGISTRY


class RecipeError(GristmillError):
    """A recipe that cannot run; the message names the file and line."""


SpecT = TypeVar("SpecT")

MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_VALUES = 100_000
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in
                        ("null", "bool", "int", "float", "str", "seq", "map", "merge", "timestamp", "binary", "set",
                         "omap", "pairs"))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse non-plain tags, self-referring aliases and alias bombs, before anything is built from the nodes.

    Sizes are counted as if every alias were expanded, but each node is visited once (sizes memoised),
    so a billion-laughs recipe is measured in microseconds and refused.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, finished = todo.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_RECIPE_VALUES:
                raise RecipeError(f"{_where(source, node)}: this value expands to more than {MAX_RECIPE_VALUES:,} "
                                  "values (YAML aliases); a recipe that large is refused")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise RecipeError(f"{_where(source, node)}: a YAML alias refers to a value that contains it")
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise RecipeError(f"{_where(source, node)}: YAML tag {tag} is not allowed; a recipe holds plain values, "
                              "lists and mappings (a Python object tag would run code)")
        open_nodes.add(key)
        todo.append((node, True))
        todo.extend((child, False) for child in _children(node))


def _positive_int(value: Any, what: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RecipeError(f"{where}: {what} must be a whole number of at least 1, not {value!r}")
    return value


def _where(source: str, node: yaml.Node) -> str:
    return f"{source} line {node.start_mark.line + 1}"


def _plain(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    return {k.value: v for k, v in node.value}


def _type_ok(value: Any, annotation: Any) -> bool:
    """Check a YAML value against a dataclass field annotation (the subset steps use)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def resolve_step_class(name: str) -> type[Step]:
    registry = load_builtin_steps()
    if ":" in name:
        module_name, _, attr = name.rpartition(":")
        try:
            module = _module_from_file(module_name) if _is_file(module_name) else importlib.import_module(module_name)
            cls = getattr(module, attr)
        except (ImportError, AttributeError, OSError, SyntaxError) as exc:
            raise KeyError(f"cannot import user step {name!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Step)):
            raise KeyError(f"{name!r} is not a gristmill Step subclass")
        return cls
    if name not in registry:
        raise KeyError(f"unknown step {name!r}; known steps: {', '.join(sorted(registry))}")
    return registry[name]


def _is_file(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def _module_from_file(path: str) -> types.ModuleType:
    """Import a user step module from an explicit file path (the recipe names the file, not a search path)."""
    import hashlib
    import importlib.util
    import sys

    file = Path(path).resolve()
    if not file.is_file():
        raise ImportError(f"no such file {path}")
    name = f"gristmill_user_steps.{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # worker processes unpickle the step's class by this name
    spec.loader.exec_module(module)
    return module


def build_step(name: str, params: dict[str, Any], where: str = "") -> Step:
    """Instantiate a step from its recipe name and parameters, checking names and types."""
    prefix = f"{where}: " if where else ""
    try:
        cls = resolve_step_class(name)
    except KeyError as exc:
        raise RecipeError(f"{prefix}{exc.args[0]}") from None
    if not dataclasses.is_dataclass(cls):
        return cls(**params)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    for key, value in params.items():
        if key not in fields:
            raise RecipeError(f"{prefix}step {name!r} has no parameter {key!r}; parameters: {', '.join(fields) or 'none'}")
        if not _type_ok(value, hints.get(key, Any)):
            raise RecipeError(f"{prefix}step {name!r}: parameter {key!r} expects {_type_name(hints[key])}, got {value!r}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{prefix}step {name!r}: {exc}") from None


def _spec(cls: type[SpecT], node: yaml.Node, source: str, section: str) -> SpecT:
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(f"{_where(source, node)}: '{section}' must be a mapping")
    values = _plain(node)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, sub in _mapping(node).items():
        if key == "paths" and isinstance(values[key], str):
            values[key] = [values[key]]
        if key not in names:
            raise RecipeError(f"{_where(source, sub)}: '{section}' has no field {key!r}; fields: {', '.join(sorted(names))}")
        if not _type_ok(values[key], hints[key]):
            raise RecipeError(f"{_where(source, sub)}: '{section}.{key}' expects {_type_name(hints[key])}, got {values[key]!r}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise RecipeError(f"{_where(source, node)}: '{section}': {exc}") from None


def parse_recipe(text: str, source: str = "<recipe>", output_override: str | None = None) -> Pipeline:
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{source}: {len(text):,} characters; a recipe is at most {MAX_RECIPE_BYTES:,}")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise RecipeError(f"{source}: YAML nested too deeply") from None
    if root is not None:
        _check_nodes(root, source)
    if not isinstance(root, yaml.MappingNode):
        raise RecipeError(f"{source}: a recipe is a mapping with input, steps and output")
    top = _mapping(root)
    for key, node in top.items():
        if key not in ("input", "steps", "output", "batch_size"):
            raise RecipeError(f"{_where(source, node)}: unknown section {key!r} (expected input, steps, output)")
    for key in ("input", "steps", "output"):
        if key not in top and not (key == "output" and output_override):
            raise RecipeError(f"{source}: missing section {key!r}")
    inp = top["input"]
    input_spec = _spec(InputSpec, inp, source, "input")
    if input_spec.format not in (*FORMATS, "auto"):
        raise RecipeError(f"{_where(source, inp)}: input.format must be one of auto, {', '.join(FORMATS)}")
    # Relative input paths are relative to the working directory, as on the command line.
    steps_node = top["steps"]
    if not isinstance(steps_node, yaml.SequenceNode):
        raise RecipeError(f"{_where(source, steps_node)}: 'steps' must be a list")
    steps: list[Step] = []
    for item in steps_node.value:
        where = _where(source, item)
        if isinstance(item, yaml.ScalarNode):
            steps.append(build_step(item.value, {}, where))
        elif isinstance(item, yaml.MappingNode) and len(item.value) == 1:
            (key, value), = item.value
            params = _plain(value) if not (isinstance(value, yaml.ScalarNode) and value.value in ("", "null", "~")) else {}
            if not isinstance(params, dict):
                raise RecipeError(f"{where}: parameters of step {key.value!r} must be a mapping")
            steps.append(build_step(key.value, params, where))
        else:
            raise RecipeError(f"{where}: a step is a name or a one-key mapping 'name: {{param: value}}'")
    if output_override:
        output = OutputSpec(path=output_override, **({k: v for k, v in _plain(top["output"]).items() if k != "path"} if "output" in top else {}))
    else:
        output = _spec(OutputSpec, top["output"], source, "output")
    if output.format not in ("parquet", "jsonl"):
        raise RecipeError(f"{source}: output.format must be parquet or jsonl")
    batch_size = _positive_int(_plain(top["batch_size"]), "batch_size", _where(source, top["batch_size"])) \
        if "batch_size" in top else 1000
    for key in ("shard_size", "max_doc_bytes"):
        _positive_int(getattr(input_spec, key), f"input.{key}", _where(source, inp))
    return Pipeline(input=input_spec, steps=steps, output=output, batch_size=batch_size)


def load_recipe(path: str | Path, output_override: str | None = None, input_override: list[str] | None = None) -> Pipeline:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from None
    pipeline = parse_recipe(text, str(path), output_override)
    if input_override:
        pipeline.input.paths = list(input_override)
    return pipeline
