"""Task-adaptive pretraining (``gristmill adapt``): continue a run's masked-LM pretraining on a task's own texts.

Gururangan et al. (2020, "Don't Stop Pretraining") report large few-label gains from a short second
phase of masked-LM training on the unlabelled texts of the task itself. Every user has such texts: the
training pool (with or without labels) and the texts to be predicted.

This module owns the adaptation set-up, not a loop:

* read the texts (JSONL with a text field, or plain text with one document per line) and refuse
  empty files with a one-line message;
* pack them with the base run's own tokenizer into ``RUN2/tokens`` (``gristmill.tokenizer.pack``),
  with a small validation split for the loss curve;
* optionally mix in a share of the original corpus's token shards (a fixed, seeded selection of its
  training sequences; they must come from the same tokenizer and sequence length), which limits
  forgetting of the general corpus;
* hand the result to :func:`gristmill.train.pretrain.pretrain` with ``init_from=RUN``, so the loop,
  checkpoints, exact resume, ``metrics.jsonl`` and ``loss.png`` are the pretraining ones.

Output ``RUN2/`` is a pretraining run like any other (``finetune`` and ``curve`` take it), plus::

    RUN2/adapt.json        base run, text files and their digest, token counts, mixing, budget
    RUN2/tokens/           the packed task texts (train and val splits, manifest)
    RUN2/_adapt/texts.jsonl  the texts as read, one JSON object per line, with ids "file:line"
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gristmill import folders, options
from gristmill.data.storage import atomic_write_text
from gristmill.folders import RunFolder
from gristmill.tokenizer import TokenDataset, pack_corpus
from gristmill.tokenizer.tokdir import TOKENIZER_JSON, TokenizerError, tokenizer_hash
from gristmill.train.checkpoint import CheckpointError, run_weights_path
from gristmill.train.pretrain import PretrainConfig, PretrainError, PretrainResult, pretrain
from gristmill.train.tasks import TaskError, load_sequence_examples


class AdaptError(PretrainError):
    """A set-up problem the user can fix (missing run, empty texts, mismatched tokenizer, existing output)."""


@dataclass
class AdaptConfig:
    run: str
    texts: list[str]
    out: str
    steps: int = 500
    batch_size: int = 32
    lr: float | None = None  # None: the base run's own peak learning rate (train.json), else 1e-4
    warmup: float = 0.06
    seed: int = 0
    text_field: str = "text"
    seq_len: int | None = None  # None: the mixed corpus's sequence length, else the base run's
    val_fraction: float = 0.05
    mix: str | None = None  # TOKENS folder of the original corpus
    mix_share: float = 0.0  # share of training sequences drawn from ``mix``
    eval_every: int = 100
    log_every: int = 10
    save_every: int = 100
    keep: int = 2
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # further PretrainConfig fields (device, bf16, ...)


# ---------------------------------------------------------------- texts


def read_texts(paths: Sequence[str | Path], text_field: str = "text") -> list[tuple[str, str]]:
    """``(id, text)`` of every non-blank document: JSONL(.gz) records' ``text_field``, or lines of other files."""
    if not paths:
        raise AdaptError("give at least one --texts file")
    texts: list[tuple[str, str]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise AdaptError(f"{path}: no such file")
        if path.name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".json")):
            try:
                found = [(f"{path.name}:{e.line}", e.text)
                         for e in load_sequence_examples(path, text_field=text_field, labelled=False)]
            except TaskError as exc:
                if "no examples" in str(exc):
                    found = []
                else:
                    raise AdaptError(str(exc)) from None
        else:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            found = [(f"{path.name}:{n}", line) for n, line in enumerate(lines, start=1) if line.strip()]
        if not found:
            raise AdaptError(f"{path}: no text to adapt on (the file is empty or has only blank lines)")
        texts += found
    return texts


def texts_digest(texts: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for doc_id, text in texts:
        h.update(doc_id.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- the training split


class MixedTokens:
    """The task's training sequences followed by a fixed, seeded selection of corpus sequences.

    Offers what the pretraining loop reads of a :class:`TokenDataset` (length, batches, the per-epoch
    order, vocabulary and special ids, manifest); the task's dataset speaks for the tokenizer.
    """

    def __init__(self, task: TokenDataset, corpus: TokenDataset, share: float, seed: int) -> None:
        self.task, self.corpus = task, corpus
        wanted = int(round(len(task) * share / (1.0 - share)))
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20]))
        self.corpus_rows = np.sort(rng.permutation(len(corpus))[:wanted])
        self.root, self.tokenizer_dir, self.manifest = task.root, task.tokenizer_dir, task.manifest
        self.seq_len, self.vocab_size, self.special = task.seq_len, task.vocab_size, task.special

    def __len__(self) -> int:
        return len(self.task) + len(self.corpus_rows)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        from_task = idx < len(self.task)
        parts = {"task": self.task.get_batch(idx[from_task]),
                 "corpus": self.corpus.get_batch(self.corpus_rows[idx[~from_task] - len(self.task)])}
        out = {}
        for key in parts["task"]:
            rows = np.empty((idx.size, *parts["task"][key].shape[1:]), dtype=parts["task"][key].dtype)
            rows[from_task] = parts["task"][key]
            rows[~from_task] = parts["corpus"][key]
            out[key] = rows
        return out

    # The order depends only on len(self), seed and epoch: the same permutation rule as TokenDataset.
    order = TokenDataset.order


def open_mix(path: str | Path, tokenizer_hash: str, seq_len: int | None) -> TokenDataset:
    """The corpus's training split, refused unless it was packed with the base run's tokenizer."""
    try:
        corpus = TokenDataset(path, split="train")
    except (OSError, ValueError, KeyError) as exc:
        raise AdaptError(f"--mix {path}: not a token folder of `gristmill tokenize` ({exc})") from None
    if corpus.manifest["tokenizer"]["hash"] != tokenizer_hash:
        raise AdaptError(f"tokenizer mismatch: the tokens in {path} were made with another tokenizer than the "
                         "base run's; mix only the corpus the run was pretrained on (or tokenize it with RUN/tokenizer)")
    if seq_len is not None and corpus.seq_len != seq_len:
        raise AdaptError(f"--seq-len {seq_len} differs from the {corpus.seq_len}-token sequences in {path}")
    return corpus


# ---------------------------------------------------------------- the run folder


def check_base_run(run: Path) -> str:
    """The base run must have a config, weights and a tokenizer; returns the tokenizer's hash."""
    problem = folders.run_problem(run)
    if problem:
        raise AdaptError(f"{problem}; adapt continues a `gristmill pretrain` run")
    try:
        run_weights_path(run)
    except CheckpointError:
        raise AdaptError(f"{run} has no {folders.WEIGHTS} and no checkpoint: nothing to continue from") from None
    if not (RunFolder(run).tokenizer / TOKENIZER_JSON).is_file():
        raise AdaptError(f"{run} has no tokenizer/ folder; adapt packs the texts with the run's own tokenizer")
    try:
        return tokenizer_hash(RunFolder(run).tokenizer)
    except TokenizerError as exc:
        raise AdaptError(str(exc)) from None


def prepare_out(cfg: AdaptConfig, digest: str) -> None:
    """Refuse to clobber: a new folder, ``--resume`` of the same adaptation, or ``--overwrite`` of an adapt run."""
    out = Path(cfg.out)
    if not (out.exists() and any(out.iterdir())):
        return
    record = out / "adapt.json"
    if cfg.resume:
        if not record.is_file():
            raise AdaptError(f"{out} is not an adapt run (no adapt.json); nothing to resume")
        old = json.loads(record.read_text(encoding="utf-8"))
        if old.get("texts_sha256") != digest or Path(old.get("base_run", "")) != Path(cfg.run).resolve():
            raise AdaptError(f"{out} adapted another run or other texts; resume needs the same RUN and --texts "
                             "(or use --overwrite)")
        return
    if not cfg.overwrite:
        raise AdaptError(f"{out} already exists; continue it with --resume or replace it with --overwrite")
    if not record.is_file():
        raise AdaptError(f"{out} is not empty and is not an adapt run; refusing to delete it")
    shutil.rmtree(out)


def default_lr(run: Path) -> float:
    """The base run's own peak learning rate; 1e-4 for runs without train.json (imported checkpoints)."""
    try:
        return float(folders.read_record(RunFolder(run).train_record)["lr"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1e-4


def default_seq_len(run: Path) -> int:
    """The sequence length the base run was pretrained on; else 128 (or fewer if the model has fewer positions)."""
    try:
        data = folders.read_record(RunFolder(run).train_record)["data"]
        return int(json.loads((Path(data) / "manifest.json").read_text(encoding="utf-8"))["seq_len"])
    except (OSError, ValueError, KeyError, TypeError):
        config = folders.read_record(RunFolder(run).config)
        return min(128, int(config.get("max_position", 128)))


def adapt(cfg: AdaptConfig) -> PretrainResult:
    """Pack the texts, then continue pretraining ``cfg.run`` on them (resumable) into ``cfg.out``."""
    message = options.config_problem(cfg, options.ADAPT)  # before any packing: the ranges of pretrain
    if message:
        raise AdaptError(message)
    if cfg.mix_share > 0 and not cfg.mix:
        raise AdaptError("--mix-share needs --mix TOKENS (the corpus the run was pretrained on)")
    base, out = Path(cfg.run).resolve(), Path(cfg.out)
    if not base.is_dir():
        raise AdaptError(f"{cfg.run}: no such run folder")
    tok_hash = check_base_run(base)
    corpus = open_mix(cfg.mix, tok_hash, cfg.seq_len) if cfg.mix and cfg.mix_share > 0 else None
    seq_len = cfg.seq_len or (corpus.seq_len if corpus is not None else default_seq_len(base))
    texts = read_texts(cfg.texts, cfg.text_field)
    digest = texts_digest(texts)
    prepare_out(cfg, digest)
    if not (out / "adapt.json").is_file():  # first, so a run killed while packing can be resumed
        atomic_write_text(out / "adapt.json", json.dumps({"base_run": str(base), "texts_sha256": digest}) + "\n")

    source = out / "_adapt" / "texts.jsonl"
    if not source.is_file():
        atomic_write_text(source, "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in texts))
    try:
        manifest = pack_corpus(source, base / "tokenizer", out / "tokens", seq_len=seq_len,
                               val_fraction=cfg.val_fraction, resume=True, allow_incomplete=True)  # its own file
    except TokenizerError as exc:
        raise AdaptError(str(exc)) from None
    task_train = TokenDataset(out / "tokens", split="train")
    task_val = TokenDataset(out / "tokens", split="val")
    train: TokenDataset | MixedTokens = task_train
    if corpus is not None:
        train = MixedTokens(task_train, corpus, cfg.mix_share, cfg.seed)
    lr = cfg.lr if cfg.lr is not None else default_lr(base)
    record = {
        "base_run": str(base), "texts": [str(Path(p).resolve()) for p in cfg.texts], "texts_sha256": digest,
        "documents": len(texts), "seq_len": seq_len,
        "task_sequences": {"train": len(task_train), "val": len(task_val)},
        "task_tokens": {s: manifest["splits"][s]["tokens"] for s in ("train", "val")},
        "mix": {"tokens": str(Path(cfg.mix).resolve()) if corpus is not None else None, "share": cfg.mix_share,
                "corpus_sequences": len(train) - len(task_train)},
        "steps": cfg.steps, "batch_size": cfg.batch_size, "lr": lr,
        "tokens_seen": cfg.steps * cfg.batch_size * seq_len,
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    folders.write_record(out / "adapt.json", record)
    # resume=True: RUN2 already holds the packed tokens, and a fresh run simply finds no checkpoint.
    pcfg = PretrainConfig(data=str(out / "tokens"), out=str(out), init_from=str(base), steps=cfg.steps,
                          batch_size=cfg.batch_size, lr=lr, warmup=cfg.warmup, seed=cfg.seed,
                          eval_every=cfg.eval_every if len(task_val) else 0, log_every=cfg.log_every,
                          save_every=cfg.save_every, keep=cfg.keep, resume=True, progress=cfg.progress,
                          **cfg.extra)
    return pretrain(pcfg, train, task_val if len(task_val) else None)
