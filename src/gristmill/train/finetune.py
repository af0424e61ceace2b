"""Fine-tuning a pretrained encoder on a small labelled task: the loop, as a recipe read top to bottom.

Load and validate the task (``gristmill.train.tasks``), take the ``--per-class`` sample, encode it
(``gristmill.train.encoding``), build a classifier on the ``RUN/`` encoder (or on a random one with
``from_scratch``: same architecture, same budget), train with AdamW and a linear warm-up/decay
schedule, evaluate on dev at fixed intervals and keep the best weights (early stopping), then score
dev and test (``gristmill.train.scores``) and write ``FT/`` (``gristmill.train.finetuned``, which also
loads it back for ``gristmill.serve``). Evaluation batches through the same forward as prediction
(``gristmill.train.forward``). This module does not parse command lines (``finetune_commands``), does
not read or write model folders itself, and does not pretrain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gristmill import folders, options
from gristmill.data import storage
from gristmill.errors import BadDataError
from gristmill.folders import RunFolder
from gristmill.model.config import ConfigError, ModelConfig
from gristmill.model.transformer import init_weights
from gristmill.provenance import provenance
from gristmill.train.checkpoint import CheckpointError, load_encoder_into, run_weights_path
from gristmill.train.device import training_device
from gristmill.train.encoding import (
    IGNORE_INDEX,
    Encoded,
    cut_summary,
    cut_warning,
    encode_examples,
    special_ids,
)
from gristmill.train.finetuned import (
    FineTuneError,
    build_classifier,
    check_tokenizer,
    load_tokenizer_dir,
    read_model_config,
    resolve_tokenizer_dir,
    save_finetuned,
)
from gristmill.train.forward import batched_logits, torch_forward
from gristmill.train.scores import classification_metrics, entity_metrics
from gristmill.train.tasks import Example, TaskData, TaskSpec, label_counts, sample_training

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Log = Callable[[str], None]


@dataclass
class FineTuneConfig:
    """Training budget and optimiser settings; the defaults are chosen for a few hundred labels.

    With ``lr=None`` the peak learning rate follows the encoder's width (:func:`default_lr`). With
    ``epochs=None`` the number of epochs is picked so that training runs at least
    ``min_steps`` optimiser steps (small samples need many passes), between ``min_epochs`` and
    ``max_epochs``. Dev is evaluated every ``eval_every`` steps (default: once per epoch, but no
    more often than every 25 steps); training stops after ``patience`` evaluations without a better
    dev macro-F1, and the best weights are restored.
    """

    lr: float | None = None
    batch_size: int = 16
    epochs: int | None = None
    min_steps: int = 300
    min_epochs: int = 3
    max_epochs: int = 50
    patience: int = 5
    eval_every: int | None = None
    warmup: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    class_weights: bool = False
    eval_batch_size: int = 64
    # Few-label recipe (docs/finetuning.md): each layer below the top learns at layer_decay times the
    # rate of the one above (1.0 = one rate for all); reinit_layers re-initialises the top encoder
    # blocks; pooling (None = the model's own, "cls" or "mean") is what the head sees.
    layer_decay: float = 1.0
    reinit_layers: int = 0
    pooling: str | None = None
    # bf16 autocast for the training forward pass (about 1.5x faster on CPUs with AVX512_BF16 or AMX);
    # weights, optimiser state and dev/test scoring stay fp32.
    bf16: bool = False
    # Where training and scoring run: "auto" takes the GPU when there is one, as pretraining does. The
    # fine-tuned model comes back on the CPU, so saving and serving never depend on the device.
    device: str = "auto"

    def __post_init__(self) -> None:
        # The command line's ranges (gristmill.options), so the API refuses what the command line refuses.
        message = options.config_problem(self, options.FINETUNE)
        if message:
            raise FineTuneError(message)
        if self.device not in options.DEVICES:
            raise FineTuneError(f"--device must be one of {', '.join(options.DEVICES)}, got {self.device!r}")

    def resolved(self, config: ModelConfig) -> FineTuneConfig:
        """A copy with the learning rate filled in for ``config``."""
        return self if self.lr is not None else replace(self, lr=default_lr(config))

    def plan(self, n_train: int) -> dict[str, int]:
        """Epochs, steps per epoch, total steps and evaluation interval for ``n_train`` examples."""
        steps_per_epoch = max(1, math.ceil(n_train / self.batch_size))
        if self.epochs is not None:
            epochs = self.epochs
        else:
            epochs = min(self.max_epochs, max(self.min_epochs, math.ceil(self.min_steps / steps_per_epoch)))
        eval_every = self.eval_every or max(steps_per_epoch, 25)
        return {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "max_steps": epochs * steps_per_epoch,
                "eval_every": eval_every}


def default_lr(config: ModelConfig) -> float:
    """Peak learning rate by encoder width: small encoders need larger steps than BERT-base.

    3e-4 up to 256 hidden units (tiny, mini), 1e-4 up to 512 (small, medium), 3e-5 above (base), in
    the ranges Turc et al. (2019) searched for the BERT miniatures and Devlin et al. (2019) for base.
    """
    if config.hidden_size <= 256:
        return 3e-4
    if config.hidden_size <= 512:
        return 1e-4
    return 3e-5


# ------------------------------------------------------------------------------------------------- model


def build_model(run_dir: Path, spec: TaskSpec, *, from_scratch: bool, seed: int, pooling: str | None = None,
                reinit_layers: int = 0) -> tuple[nn.Module, ModelConfig]:
    """The classifier for ``spec`` on ``RUN``'s architecture: pretrained encoder weights or random ones.

    The same seed gives the same head (and, from scratch, the same encoder), so a pretrained and a
    scratch run with one seed differ only in the encoder weights. ``pooling`` overrides the model's;
    ``reinit_layers`` re-initialises that many top blocks of a pretrained encoder.
    """
    config = read_model_config(run_dir)
    if pooling is not None and spec.type == "sequence":
        try:
            config = replace(config, pooling=pooling)
        except ConfigError as exc:
            raise FineTuneError(str(exc)) from None
    if spec.max_length > config.max_position:
        raise FineTuneError(f"--max-length {spec.max_length} exceeds the model's {config.max_position} positions")
    if spec.pair_field and getattr(config, "type_vocab_size", 0) < 2:
        raise FineTuneError("text pairs need segment embeddings, but this model has type_vocab_size "
                            f"{getattr(config, 'type_vocab_size', 0)}")
    torch.manual_seed(seed)
    model = build_classifier(config, spec)
    if not from_scratch:
        try:
            run_weights_path(run_dir)
        except CheckpointError:
            raise FineTuneError(f"{run_dir} has no {folders.WEIGHTS} and no checkpoint: nothing pretrained to "
                                "start from (--from-scratch trains without it)") from None
        try:
            load_encoder_into(model, run_dir)
        except BadDataError:
            raise  # a damaged file, not a mismatch: its own message and exit status
        except (CheckpointError, RuntimeError, KeyError, ValueError) as exc:
            raise FineTuneError(f"{run_dir}: the pretrained weights do not fit {folders.CONFIG}: {exc}") from None
        reinit_top_layers(model, config, reinit_layers)
    return model, config


def reinit_top_layers(model: nn.Module, config: ModelConfig, count: int) -> None:
    """Back to BERT's initialisation for the top ``count`` blocks (Zhang et al. 2021, few-sample BERT)."""
    for block in list(model.encoder.layers)[len(model.encoder.layers) - count:] if count > 0 else []:
        block.apply(lambda m: init_weights(m, config))


# --------------------------------------------------------------------------------------- batches and eval


def collate(batch: Sequence[Encoded], pad_id: int, token_task: bool) -> dict[str, torch.Tensor]:
    """Pad to the longest example of this batch (right padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long) if token_task else None
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        types[row, :n] = torch.tensor(e.token_type_ids)
        mask[row, :n] = 1
        if labels is not None:
            labels[row, :n] = torch.tensor(e.labels)
    if labels is None:
        labels = torch.tensor([e.labels[0] for e in batch], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}


def class_weight_tensor(encoded: Sequence[Encoded], num_labels: int) -> torch.Tensor:
    """scikit-learn's "balanced" weights, n / (k * count), over the labels that count in the loss."""
    counts = np.zeros(num_labels)
    for e in encoded:
        for label in e.labels:
            if label != IGNORE_INDEX:
                counts[label] += 1
    present = counts > 0
    weights = np.zeros(num_labels)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def predict_logits(model: nn.Module, encoded: Sequence[Encoded], pad_id: int, token_task: bool,
                   batch_size: int = 64) -> list[np.ndarray]:
    """Logits per example in input order, through the one batched forward (``gristmill.train.forward``)."""
    pairs = [(e.input_ids, e.token_type_ids) for e in encoded]
    return batched_logits(pairs, pad_id, torch_forward(model), batch_size, per_token=token_task)


def evaluate(model: nn.Module, examples: Sequence[Example], encoded: Sequence[Encoded], spec: TaskSpec,
             pad_id: int, loss_fn: nn.Module, batch_size: int = 64) -> dict[str, Any]:
    """Loss and metrics of ``model`` on one split; token tasks are scored per word (first subword)."""
    token_task = spec.type == "token"
    logits = predict_logits(model, encoded, pad_id, token_task, batch_size)
    if not token_task:
        stacked = torch.from_numpy(np.stack(logits))
        targets = torch.tensor([e.labels[0] for e in encoded])
        loss = float(loss_fn(stacked, targets))
        result = classification_metrics(targets.tolist(), stacked.argmax(-1).tolist(), spec.labels)
        result["loss"] = loss
        return result
    label2id = spec.label2id
    # Words cut off by max_length still count: they are predicted as "O" (or the first label), so a
    # short max_length shows up in the scores instead of silently shrinking the test set.
    fallback = label2id.get("O", 0)
    y_true: list[int] = []
    y_pred: list[int] = []
    true_tags: list[list[str]] = []
    pred_tags: list[list[str]] = []
    losses, counted, cut = 0.0, 0, 0
    for ex, enc, lg in zip(examples, encoded, logits, strict=True):
        t = torch.from_numpy(lg)
        targets = torch.tensor(enc.labels)
        valid = targets != IGNORE_INDEX
        if valid.any():
            losses += float(loss_fn(t[valid], targets[valid])) * int(valid.sum())
            counted += int(valid.sum())
        best = lg.argmax(-1)
        preds = [int(best[pos]) if pos >= 0 else fallback for pos in enc.word_positions]
        cut += sum(1 for pos in enc.word_positions if pos < 0)
        y_true.extend(label2id[tag] for tag in ex.tags)
        y_pred.extend(preds)
        true_tags.append(list(ex.tags))
        pred_tags.append([spec.labels[p] for p in preds])
    result = classification_metrics(y_true, y_pred, spec.labels)
    result["loss"] = losses / max(counted, 1)
    result["words_cut"] = cut
    if any(lab.startswith(("B-", "I-")) for lab in spec.labels):
        result["entity"] = entity_metrics(true_tags, pred_tags)
    return result


# ------------------------------------------------------------------------------------------------ training


@dataclass
class TrainOutcome:
    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    best_step: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder block i, num_layers + 1 for everything above (pooler, head)."""
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    if "layers" in parts:
        return int(parts[parts.index("layers") + 1]) + 1
    return num_layers + 1


def _optimizer(model: nn.Module, cfg: FineTuneConfig) -> torch.optim.Optimizer:
    # As in BERT: no weight decay on biases and LayerNorm weights. With layer-wise decay each depth
    # gets its own groups, at lr * layer_decay ** (distance from the top).
    assert cfg.lr is not None
    top = model.config.num_layers + 1
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        depth = layer_depth(name, model.config.num_layers) if cfg.layer_decay != 1.0 else top
        groups.setdefault((depth, p.ndim < 2 or "norm" in name.lower()), []).append(p)
    return torch.optim.AdamW([{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                               "lr": cfg.lr * cfg.layer_decay ** (top - depth)}
                              for (depth, no_decay), params in sorted(groups.items())], lr=cfg.lr)


def train_classifier(
    model: nn.Module, spec: TaskSpec, train: Sequence[Encoded], dev_examples: Sequence[Example],
    dev: Sequence[Encoded], cfg: FineTuneConfig, pad_id: int, seed: int, log: Log | None = None,
) -> TrainOutcome:
    """The fine-tuning loop; leaves ``model`` with the weights of the best dev evaluation."""
    token_task = spec.type == "token"
    plan = cfg.plan(len(train))
    device = next(model.parameters()).device
    weights = class_weight_tensor(train, len(spec.labels)).to(device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE_INDEX)
    eval_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    assert cfg.lr is not None, "resolve the learning rate first (FineTuneConfig.resolved)"
    optimizer = _optimizer(model, cfg)
    warmup = int(cfg.warmup * plan["max_steps"])

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (plan["max_steps"] - step) / max(1, plan["max_steps"] - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    autocast = torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    generator = torch.Generator().manual_seed(seed)
    outcome = TrainOutcome()
    best_score: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals = 0
    running, running_n = 0.0, 0
    t0 = time.perf_counter()
    step = 0
    for epoch in range(plan["epochs"]):
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order), cfg.batch_size):
            model.train()
            batch = {k: v.to(device, non_blocking=True)
                     for k, v in collate([train[i] for i in order[start : start + cfg.batch_size]], pad_id,
                                         token_task).items()}
            with autocast:
                logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            running += loss.item()
            running_n += 1
            last = step == plan["max_steps"]
            if step % plan["eval_every"] and not last:
                continue
            entry: dict[str, float] = {"step": step, "epoch": epoch + 1, "train_loss": running / running_n}
            running, running_n = 0.0, 0
            if dev:
                scores = evaluate(model, dev_examples, dev, spec, pad_id, eval_loss, cfg.eval_batch_size)
                entry.update(dev_loss=scores["loss"], dev_accuracy=scores["accuracy"], dev_macro_f1=scores["macro_f1"])
                score = (scores["macro_f1"], -scores["loss"])
                if best_score is None or score > best_score:
                    best_score, bad_evals, outcome.best_step = score, 0, step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_evals += 1
            outcome.history.append(entry)
            if log:
                dev_part = (f"  dev loss {entry['dev_loss']:.4f} acc {entry['dev_accuracy']:.4f} "
                            f"macro-F1 {entry['dev_macro_f1']:.4f}") if dev else ""
                log(f"step {step}/{plan['max_steps']} epoch {epoch + 1}  train loss {entry['train_loss']:.4f}{dev_part}")
            if dev and bad_evals >= cfg.patience:
                outcome.stopped_early = True
                break
        if outcome.stopped_early:
            break
    outcome.steps = step
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        outcome.best_step = step
    model.eval()
    outcome.seconds = time.perf_counter() - t0
    return outcome


# ----------------------------------------------------------------------------------------- the whole run


@dataclass
class FineTuneResult:
    metrics: dict[str, Any]
    model: nn.Module
    config: ModelConfig
    out: Path | None


def finetune(
    run_dir: str | Path,
    data: TaskData,
    cfg: FineTuneConfig | None = None,
    *,
    out: str | Path | None = None,
    from_scratch: bool = False,
    per_class: int | None = None,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
    overwrite: bool = False,
    tokenizer: Tokenizer | None = None,
    encoded: dict[str, list[Encoded]] | None = None,
    log: Log | None = None,
) -> FineTuneResult:
    """Fine-tune ``RUN`` on ``data``; write ``FT/`` when ``out`` is given.

    ``tokenizer`` and ``encoded`` (dev/test already encoded) let a learning curve encode once for
    many runs; they must come from the same tokenizer folder.
    """
    cfg = cfg or FineTuneConfig()
    device = training_device(cfg.device)  # first: asking for a GPU that is not there costs nothing
    run = Path(run_dir)
    if not run.is_dir():  # the rest of run_problem after the output checks: a refusal there costs nothing
        raise FineTuneError(folders.run_problem(run) or f"{run}: no such model folder")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise FineTuneError(f"{out_dir} is a file; --out names the folder to create")
    if out_dir is not None and out_dir.exists() and storage.has_content(out_dir) and not overwrite:
        raise FineTuneError(f"{out_dir} already exists; choose another --out or pass --overwrite")
    if out_dir is not None:
        try:  # before training, so a refusal costs nothing
            storage.check_not_input(out_dir, [run, tokenizer_dir, *data.paths.values()])
            if out_dir.exists() and storage.has_content(out_dir):
                storage.removable(out_dir, "finetune", legacy=folders.LEGACY_FT)
        except storage.OutputError as exc:
            raise FineTuneError(str(exc)) from None
    spec = data.spec
    config = read_model_config(run)  # first: a folder that is not a run is told so, whatever it lacks
    tokdir = resolve_tokenizer_dir(run, Path(tokenizer_dir) if tokenizer_dir else None)
    if tokenizer is None:
        tokenizer = load_tokenizer_dir(tokdir)
        check_tokenizer(tokenizer, config, tokdir, RunFolder(run).tokenizer)
    pad_id, _, _ = special_ids(tokenizer)

    sample = sample_training(data.train, per_class, seed)
    if len(label_counts(sample.examples)) < 2:
        raise FineTuneError("the training sample has only one class; raise --per-class or check the training file")
    if log and sample.short:
        short = ", ".join(f"{k} ({v})" for k, v in sample.short.items())
        log(f"fewer than {per_class} training examples for: {short}; using all of them")
    encoded = dict(encoded or {})
    train_enc = encode_examples(tokenizer, sample.examples, spec)
    for split in ("dev", "test"):
        if split not in encoded:
            encoded[split] = encode_examples(tokenizer, getattr(data, split), spec)

    # Cut texts are a silent handicap against baselines that read whole texts (TF-IDF): say so.
    cuts = {split: cut_summary(enc) for split, enc in (("train", train_enc), *encoded.items()) if enc}
    if log and (line := cut_warning(cuts["train"], "training", spec.max_length)):
        log(line)

    model, config = build_model(run, spec, from_scratch=from_scratch, seed=seed, pooling=cfg.pooling,
                                reinit_layers=cfg.reinit_layers)
    model.to(device)
    cfg = cfg.resolved(config)
    plan = cfg.plan(len(train_enc))
    if log:
        log(f"{'scratch' if from_scratch else 'pretrained'} {config.name or ''} encoder, {len(train_enc):,} training "
            f"examples, {plan['epochs']} epochs x {plan['steps_per_epoch']} steps, lr {cfg.lr:g}")
    outcome = train_classifier(model, spec, train_enc, data.dev, encoded["dev"], cfg, pad_id, seed, log)

    eval_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    metrics: dict[str, Any] = {
        "task": spec.type,
        "init": "scratch" if from_scratch else "pretrained",
        "model": str(run),
        "model_size": config.name,
        "tokenizer": str(tokdir),
        "seed": seed,
        "per_class": per_class,
        "train_examples": len(sample.examples),
        "train_label_counts": dict(sorted(label_counts(sample.examples).items())),
        "sample_short": sample.short,
        "data": data.paths,
        "budget": {**asdict(cfg), **plan, "max_length": spec.max_length},
        "truncation": cuts,
        "training": {"steps": outcome.steps, "best_step": outcome.best_step,
                     "stopped_early": outcome.stopped_early, "seconds": round(outcome.seconds, 2)},
        "history": outcome.history,
        "provenance": provenance(),
    }
    for split in ("dev", "test"):
        if encoded[split]:
            metrics[split] = evaluate(model, getattr(data, split), encoded[split], spec, pad_id, eval_loss,
                                      cfg.eval_batch_size)
    model.to("cpu")
    if out_dir is not None:
        save_finetuned(out_dir, model, config, spec, tokdir, metrics)
    return FineTuneResult(metrics=metrics, model=model, config=config, out=out_dir)
