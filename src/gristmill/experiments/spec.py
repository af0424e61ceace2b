"""The ablation spec: YAML -> :class:`AblationSpec`, validated completely before any work starts.

A spec names the raw corpus, the variants (each a list of recipe steps applied to the same input),
the pretraining budgets and seeds, and the downstream task::

    corpus: {paths: ["crawl/*.jsonl.gz"]}                # any `input:` fields of a recipe
    variants:
      raw: []                                            # a list of steps, as in a recipe
      filtered: recipes/web-en.yaml#filters              # a recipe file, or part of one (below)
      deduplicated: [exact_dedup, minhash_dedup]
      full: recipes/web-en.yaml
      loose: {from: full, set: {gopher_quality.min_words: 30}}   # another variant with changed parameters
    baseline: raw                                        # differences are taken against it (default: the first)
    heldout: {fraction: 0.01, clean_with: full, max_sequences: 1024}
    tokenizer: {kind: wordpiece, vocab_size: 8000, train_on: pool}
    pretrain: {model_size: tiny, tokens: [2M, 6M], seeds: [0, 1], lr: 0.001}
    task: {train: task/train.jsonl, dev: task/dev.jsonl, test: task/test.jsonl, per_class: [8, 32], seeds: [0, 1]}

Naming part of a recipe (``FILE#SELECTOR``):

- ``FILE#filters``: every per-document step of the recipe (everything but the corpus-wide steps);
- ``FILE#corpus``: only its corpus-wide steps (exact/MinHash/line dedup, decontamination);
- ``FILE#a..b``: the steps from the one named ``a`` to the one named ``b``, both included;
- ``FILE#a,b,c``: the named steps, in the recipe's order, with the recipe's parameters.

Relative paths (recipes, task files, corpus) are relative to the working directory, as on the
``gristmill run`` command line. Every error is one line naming the spec file (and the line where
YAML knows it); nothing is read, trained or written before the whole spec has passed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gristmill.data import storage
from gristmill.data.inputs import FORMATS, InputSpec, expand_paths
from gristmill.data.pipeline import CorpusStep, Step
from gristmill.data.recipe import RecipeError, build_step, resolve_step_class
from gristmill.errors import GristmillError
from gristmill.model.config import NAMED_SIZES


def budget_name(tokens: int) -> str:
    """A folder-safe, readable budget: 2000000 -> 2M, 500000 -> 500k."""
    for scale, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        text = f"{tokens / scale:.3g}"
        # Only when the short name means exactly this budget (1234 stays 1234, not 1.23k).
        if tokens >= scale and round(float(text) * scale) == tokens:
            return f"{text}{suffix}"
    return str(tokens)

class SpecError(GristmillError):
    """An ablation spec that cannot run; the message names the file and, where known, the line."""


StepEntry = tuple[str, dict[str, Any]]
"""A recipe step as data: its name and its parameters."""

SECTIONS = ("corpus", "variants", "baseline", "heldout", "tokenizer", "pretrain", "task", "workers")
PRETRAIN_OWN = ("model_size", "tokens", "seeds", "seq_len")
# PretrainConfig fields the orchestrator sets itself (paths, schedule length, evaluation, resume).
PRETRAIN_FIXED = ("data", "out", "steps", "seed", "eval_every", "eval_batches", "resume", "overwrite", "progress",
                  "init_from", "save_every")


@dataclass
class Variant:
    name: str
    steps: list[StepEntry]
    source: str
    """How the spec named it (for the report)."""

    def build(self) -> list[Step]:
        return [build_step(name, dict(params)) for name, params in self.steps]


@dataclass
class AblationSpec:
    path: str
    corpus: InputSpec
    variants: list[Variant]
    baseline: str
    tokens: list[int]
    pretrain_seeds: list[int]
    model_size: str = "tiny"
    seq_len: int = 128
    pretrain: dict[str, Any] = field(default_factory=dict)
    """Further PretrainConfig fields (batch_size, lr, schedule, ...)."""
    task: dict[str, Any] = field(default_factory=dict)
    per_class: list[int | None] = field(default_factory=lambda: [32])
    task_seeds: list[int] = field(default_factory=lambda: [0])
    decontaminate: bool = True
    dev_per_class: int | None = None
    heldout_fraction: float = 0.01
    heldout_clean_with: str = ""
    heldout_max_sequences: int = 1024
    tokenizer: dict[str, Any] = field(default_factory=dict)
    tokenizer_train_on: str = "pool"
    workers: int = 1

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that decides the numbers; a resumed ablation must have the same."""
        data = dataclasses.asdict(self)
        data.pop("path")
        data.pop("workers")
        for v in data["variants"]:
            v.pop("source")
        return data


# ------------------------------------------------------------------------------------------ parsing


def parse_tokens(value: Any, where: str) -> int:
    """``2M``, ``500k``, ``1.5M``, ``1G`` or a plain number of tokens; must be positive."""
    text = str(value).strip()
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*([kKmMgGbB]?)", text)
    if not match or isinstance(value, bool):
        raise SpecError(f"{where}: {value!r} is not a token budget (write 500k, 2M or a number)")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}[match.group(2).lower()]
    tokens = float(match.group(1)) * scale
    if tokens <= 0 or not math.isfinite(tokens):
        raise SpecError(f"{where}: a token budget must be positive, got {value!r}")
    return int(tokens)


def _where(source: str, node: yaml.Node | None) -> str:
    return f"{source} line {node.start_mark.line + 1}" if node is not None else source


def _mapping_nodes(node: yaml.Node, source: str, section: str) -> dict[str, yaml.Node]:
    """A mapping's keys -> value nodes, refusing duplicate keys (YAML would silently keep the last)."""
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(f"{_where(source, node)}: '{section}' must be a mapping")
    seen: dict[str, yaml.Node] = {}
    for key, _ in node.value:
        if key.value in seen:
            what = "variant name" if section == "variants" else f"key in '{section}'"
            raise SpecError(f"{_where(source, key)}: duplicate {what} {key.value!r} "
                            f"(first at line {seen[key.value].start_mark.line + 1})")
        seen[key.value] = key
    return {k.value: v for k, v in node.value}


def _plain(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _check_keys(values: dict[str, Any], allowed: tuple[str, ...], where: str, section: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: '{section}' has no field {unknown[0]!r}; fields: {', '.join(allowed)}")


def _int_list(value: Any, where: str, name: str, allow_all: bool = False) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if allow_all and str(item).lower() == "all":
            out.append(None)
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        else:
            raise SpecError(f"{where}: '{name}' must be a list of integers{' or all' if allow_all else ''}, got {item!r}")
    if not out:
        raise SpecError(f"{where}: '{name}' is empty")
    if len(set(out)) != len(out):
        raise SpecError(f"{where}: '{name}' repeats a value: {value!r}")
    return out


def _entry(item: Any, where: str) -> StepEntry:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        (name, params), = item.items()
        params = params or {}
        if not isinstance(params, dict):
            raise SpecError(f"{where}: parameters of step {name!r} must be a mapping")
        return str(name), params
    raise SpecError(f"{where}: a step is a name or a one-key mapping 'name: {{param: value}}', got {item!r}")


def _is_corpus_step(name: str) -> bool:
    try:
        return issubclass(resolve_step_class(name), CorpusStep)
    except KeyError:
        return False


def select_steps(entries: list[StepEntry], selector: str, where: str) -> list[StepEntry]:
    """The part of a recipe's steps that ``selector`` names (see the module docstring)."""
    names = [n for n, _ in entries]
    if selector == "filters":
        return [e for e in entries if not _is_corpus_step(e[0])]
    if selector == "corpus":
        return [e for e in entries if _is_corpus_step(e[0])]
    if ".." in selector:
        first, _, last = selector.partition("..")
        for n in (first, last):
            if n not in names:
                raise SpecError(f"{where}: the recipe has no step {n!r}; its steps: {', '.join(names)}")
        i, j = names.index(first), names.index(last)
        if i > j:
            raise SpecError(f"{where}: step {first!r} comes after {last!r} in the recipe")
        return entries[i:j + 1]
    wanted = [s.strip() for s in selector.split(",") if s.strip()]
    for n in wanted:
        if n not in names:
            raise SpecError(f"{where}: the recipe has no step {n!r} (selectors: filters, corpus, a..b, a,b; "
                            f"its steps: {', '.join(names)})")
    return [e for e in entries if e[0] in wanted]


def recipe_steps(ref: str, where: str) -> list[StepEntry]:
    """The steps of ``recipe.yaml`` or ``recipe.yaml#selector``."""
    file, _, selector = ref.partition("#")
    path = Path(file)
    if not path.is_file():
        raise SpecError(f"{where}: recipe file {file} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: {file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise SpecError(f"{where}: {file} has no 'steps' list")
    entries = [_entry(item, f"{where} ({file})") for item in data["steps"]]
    return select_steps(entries, selector, where) if selector else entries


def _variant_steps(name: str, node: yaml.Node, source: str, done: dict[str, Variant],
                   pending: dict[str, yaml.Node]) -> Variant:
    where = _where(source, node)
    value = _plain(node)
    if value is None or isinstance(value, list):
        entries = [_entry(item, where) for item in (value or [])]
        return Variant(name, entries, yaml.safe_dump(value or [], default_flow_style=True).strip())
    if isinstance(value, str):
        return Variant(name, recipe_steps(value, where), value)
    if isinstance(value, dict) and "from" in value:
        _check_keys(value, ("from", "set"), where, f"variants.{name}")
        base = str(value["from"])
        if base not in done:
            known = ", ".join(n for n in list(done) + list(pending) if n != name)
            raise SpecError(f"{where}: variant {name!r} is made from {base!r}, which is not an earlier variant "
                            f"(earlier: {known or 'none'})")
        entries = [(n, dict(p)) for n, p in done[base].steps]
        for key, new in (value.get("set") or {}).items():
            step, _, param = str(key).partition(".")
            hits = [p for n, p in entries if n == step]
            if not param or not hits:
                raise SpecError(f"{where}: 'set' key {key!r} must be STEP.PARAM with a step of variant {base!r} "
                                f"({', '.join(n for n, _ in entries) or 'no steps'})")
            for params in hits:
                params[param] = new
        return Variant(name, entries, f"{base} with {value.get('set') or {}}")
    raise SpecError(f"{where}: variant {name!r} must be a list of steps, a recipe file (FILE or FILE#SELECTOR) "
                    "or {from: VARIANT, set: {STEP.PARAM: VALUE}}")


def _check_variant(variant: Variant, where: str) -> None:
    try:
        for name, params in variant.steps:
            build_step(name, dict(params))
    except RecipeError as exc:
        raise SpecError(f"{where}: variant {variant.name!r}: {exc}") from None


def _task_files(task: dict[str, Any], where: str) -> None:
    for split in ("train", "dev", "test"):
        if split not in task:
            raise SpecError(f"{where}: 'task.{split}' is missing (the curve needs train, dev and test files)")
        if not Path(str(task[split])).is_file():
            raise SpecError(f"{where}: task file {task[split]} ({split}) does not exist")


def parse_spec(text: str, source: str = "<spec>") -> AblationSpec:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from None
    if root is None:
        raise SpecError(f"{source}: the spec is empty")
    top = _mapping_nodes(root, source, "spec")
    for key, node in top.items():
        if key not in SECTIONS:
            raise SpecError(f"{_where(source, node)}: unknown section {key!r} (sections: {', '.join(SECTIONS)})")
    for key in ("corpus", "variants", "pretrain", "task"):
        if key not in top:
            raise SpecError(f"{source}: missing section {key!r}")

    # -- corpus: the fields of a recipe's input
    corpus_node = top["corpus"]
    corpus = _plain(corpus_node)
    if not isinstance(corpus, dict):
        raise SpecError(f"{_where(source, corpus_node)}: 'corpus' must be a mapping such as {{paths: [crawl/*.jsonl.gz]}}")
    if isinstance(corpus.get("paths"), str):
        corpus["paths"] = [corpus["paths"]]
    _check_keys(corpus, tuple(f.name for f in dataclasses.fields(InputSpec)), _where(source, corpus_node), "corpus")
    try:
        input_spec = InputSpec(**corpus)
    except TypeError as exc:
        raise SpecError(f"{_where(source, corpus_node)}: 'corpus': {exc}") from None
    if input_spec.format not in (*FORMATS, "auto"):
        raise SpecError(f"{_where(source, corpus_node)}: corpus.format must be one of auto, {', '.join(FORMATS)}")
    found = expand_paths(input_spec.paths)
    missing = [p for p in found if not storage.is_url(p) and not Path(p).exists()]
    if not found or missing:
        raise SpecError(f"{_where(source, corpus_node)}: corpus.paths: {(missing or input_spec.paths)[0]} "
                        "does not exist (or matches no file)")

    # -- variants, in spec order; 'from' may name only an earlier one
    variant_nodes = _mapping_nodes(top["variants"], source, "variants")
    if not variant_nodes:
        raise SpecError(f"{_where(source, top['variants'])}: 'variants' is empty")
    variants: dict[str, Variant] = {}
    for name, node in variant_nodes.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise SpecError(f"{_where(source, node)}: variant name {name!r} must be letters, digits, '_', '-' or '.' "
                            "(it names a folder)")
        variant = _variant_steps(name, node, source, variants, variant_nodes)
        _check_variant(variant, _where(source, node))
        variants[name] = variant
    baseline = str(_plain(top["baseline"])) if "baseline" in top else next(iter(variants))
    if baseline not in variants:
        raise SpecError(f"{_where(source, top.get('baseline'))}: baseline {baseline!r} is not a variant "
                        f"({', '.join(variants)})")

    # -- pretraining: budgets, seeds, model, and any PretrainConfig field
    pre_node = top["pretrain"]
    pre = _plain(pre_node)
    where = _where(source, pre_node)
    if not isinstance(pre, dict):
        raise SpecError(f"{where}: 'pretrain' must be a mapping")
    allowed = PRETRAIN_OWN + tuple(f for f in _pretrain_fields() if f not in PRETRAIN_FIXED and f != "model_size")
    _check_keys(pre, allowed, where, "pretrain")
    if "tokens" not in pre:
        raise SpecError(f"{where}: 'pretrain.tokens' is missing (the token budgets, for example [2M, 6M])")
    budgets = pre.pop("tokens")
    tokens = [parse_tokens(t, f"{where}: pretrain.tokens") for t in (budgets if isinstance(budgets, list) else [budgets])]
    if not tokens:
        raise SpecError(f"{where}: 'pretrain.tokens' is empty")
    if len(set(tokens)) != len(tokens):
        raise SpecError(f"{where}: 'pretrain.tokens' repeats a budget: {budgets!r}")
    seeds = _int_list(pre.pop("seeds", [0]), where, "pretrain.seeds")
    model_size = str(pre.pop("model_size", "tiny"))
    if model_size not in NAMED_SIZES:
        raise SpecError(f"{where}: pretrain.model_size {model_size!r} is not one of {', '.join(NAMED_SIZES)}")
    seq_len = pre.pop("seq_len", 128)
    if not isinstance(seq_len, int) or seq_len < 8:
        raise SpecError(f"{where}: pretrain.seq_len must be an integer of at least 8")
    from gristmill.train.pretrain import PretrainConfig, PretrainError

    try:
        PretrainConfig(data="", out="", **pre).check()
    except (PretrainError, TypeError) as exc:
        raise SpecError(f"{where}: pretrain: {exc}") from None

    # -- task
    task_node = top["task"]
    task = _plain(task_node)
    where = _where(source, task_node)
    if not isinstance(task, dict):
        raise SpecError(f"{where}: 'task' must be a mapping with train, dev and test")
    _check_keys(task, ("train", "dev", "test", "per_class", "seeds", "decontaminate", "dev_per_class", "text_field",
                       "label_field", "max_length", "finetune"), where, "task")
    _task_files(task, where)
    per_class = _int_list(task.pop("per_class", [32]), where, "task.per_class", allow_all=True)
    if any(p is not None and p < 1 for p in per_class):
        raise SpecError(f"{where}: 'task.per_class' sizes must be at least 1")
    task_seeds = _int_list(task.pop("seeds", [0]), where, "task.seeds")
    decontaminate = bool(task.pop("decontaminate", True))
    finetune = task.get("finetune") or {}
    from gristmill.train.finetune import FineTuneConfig

    if not isinstance(finetune, dict):
        raise SpecError(f"{where}: 'task.finetune' must be a mapping of fine-tuning settings")
    try:
        FineTuneConfig(**finetune)
    except TypeError as exc:
        raise SpecError(f"{where}: task.finetune: {exc}") from None
    dev_per_class = task.pop("dev_per_class", None)
    if dev_per_class is not None and (not isinstance(dev_per_class, int) or dev_per_class < 1):
        raise SpecError(f"{where}: 'task.dev_per_class' must be a positive integer")

    # -- held-out text, tokenizer, workers
    held = _plain(top["heldout"]) if "heldout" in top else {}
    where = _where(source, top.get("heldout"))
    if not isinstance(held, dict):
        raise SpecError(f"{where}: 'heldout' must be a mapping")
    _check_keys(held, ("fraction", "clean_with", "max_sequences"), where, "heldout")
    fraction = held.get("fraction", 0.01)
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 0.5:
        raise SpecError(f"{where}: heldout.fraction must be in (0, 0.5), got {fraction!r}")
    clean_with = str(held.get("clean_with", list(variants)[-1]))
    if clean_with not in variants:
        raise SpecError(f"{where}: heldout.clean_with {clean_with!r} is not a variant ({', '.join(variants)})")
    max_sequences = held.get("max_sequences", 1024)
    if not isinstance(max_sequences, int) or max_sequences < 1:
        raise SpecError(f"{where}: heldout.max_sequences must be a positive integer")
    tok = _plain(top["tokenizer"]) if "tokenizer" in top else {}
    where = _where(source, top.get("tokenizer"))
    if not isinstance(tok, dict):
        raise SpecError(f"{where}: 'tokenizer' must be a mapping")
    _check_keys(tok, ("kind", "vocab_size", "lowercase", "min_frequency", "max_documents", "train_on"), where, "tokenizer")
    train_on = str(tok.pop("train_on", "pool"))
    if train_on != "pool" and train_on not in variants:
        raise SpecError(f"{where}: tokenizer.train_on must be 'pool' or a variant, got {train_on!r}")
    if tok.get("vocab_size", 8000) < 16:
        raise SpecError(f"{where}: tokenizer.vocab_size is too small")
    workers = _plain(top["workers"]) if "workers" in top else 1
    if not isinstance(workers, int) or workers < 1:
        raise SpecError(f"{_where(source, top.get('workers'))}: 'workers' must be a positive integer")

    return AblationSpec(path=source, corpus=input_spec, variants=list(variants.values()), baseline=baseline,
                        tokens=tokens, pretrain_seeds=seeds, model_size=model_size, seq_len=seq_len, pretrain=pre,
                        task=task, per_class=per_class, task_seeds=task_seeds, decontaminate=decontaminate,
                        dev_per_class=dev_per_class, heldout_fraction=float(fraction), heldout_clean_with=clean_with,
                        heldout_max_sequences=max_sequences, tokenizer=tok, tokenizer_train_on=train_on,
                        workers=workers)


def _pretrain_fields() -> tuple[str, ...]:
    # PretrainConfig lives in train/, which imports torch; the field names are all the spec needs.
    from gristmill.train.pretrain import PretrainConfig

    return tuple(f.name for f in dataclasses.fields(PretrainConfig))


def load_spec(path: str | Path) -> AblationSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc.strerror}") from None
    return parse_spec(text, str(path))
