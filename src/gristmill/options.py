"""Ranges of the numeric command-line options, checked while the command line is parsed, before any work.

One table of ranges for every verb: a flag such as ``--batch-size 0``, ``--lr nan`` or
``--mask-prob 2`` ends in one line naming the flag and the allowed range, exit status 2, before a
file is read or a model is built. The verbs attach a range with ``typer.Option(..., callback=...)``;
library entry points (``PretrainConfig.check``, ``FineTuneConfig``) call :func:`problem` with the same
ranges, so the API refuses what the command line refuses. Floats must always be finite.

``MAX_POSITIONS`` is the longest sequence gristmill builds a model for; token packing, fine-tuning and
pretraining refuse lengths beyond it (a 100,000-token sequence would build 100,000 position embeddings
and quadratic attention that never finishes a step). This module must not import torch or any package
of gristmill above the base modules (gristmill.console prints the error; typer reads the callback's annotations, so typer is imported at the top).
It also holds the help texts of the flags every verb shares (``--progress``, ``--threads``, ``--seed``, ``--json``),
so they read the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import typer

from gristmill.console import fail
from gristmill.errors import GristmillError

MAX_POSITIONS = 8192
"""Longest sequence (tokens) a gristmill model may be asked to hold: 16x BERT's 512."""

MAX_SEED = 2**32 - 1
"""numpy's legacy generators and some samplers take 32-bit seeds."""


# Help texts of the flags every verb spells alike (--progress, --threads, --seed).
PROGRESS_HELP = "Show a progress bar on stderr (-q/--quiet hides it too)."
THREADS_HELP = "CPU threads for PyTorch (default: PyTorch's choice)."
SEED_HELP = "Random seed: the same seed and inputs give the same result."
JSON_HELP = "Print the result as one JSON object on stdout (and nothing else there)."
BF16_HELP = "bf16 autocast for the training forward pass (weights and optimiser state stay fp32)."
DEVICE_HELP = "auto: cuda when there is one."
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


class OptionError(GristmillError, ValueError):
    """A setting outside its range; the message names the flag."""


@dataclass(frozen=True)
class Range:
    """Allowed values: ``low``/``high`` bounds (None: unbounded), each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo, hi = _fmt(self.low), _fmt(self.high)
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {lo}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {hi}"
        return f"a finite {kind.split()[-1]}"

    def contains(self, value: float) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):  # nan compares False with everything
            return False
        if self.integer and value != int(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def _fmt(bound: float | None) -> str:
    return "" if bound is None else (f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}")


def at_least(low: float, integer: bool = True) -> Range:
    return Range(low=low, integer=integer)


POSITIVE = Range(low=0.0, low_open=True)
"""A finite number > 0 (learning rates, time-outs)."""
NON_NEGATIVE = Range(low=0.0)
COUNT = at_least(1)
"""An integer >= 1 (batch sizes, steps, workers, threads)."""
FRACTION = Range(low=0.0, high=1.0, high_open=True)
"""[0, 1): dropout, a validation share."""
PROBABILITY = Range(low=0.0, high=1.0, low_open=True)
"""(0, 1]: a share of tokens that must not be empty."""
MASK_PROB = Range(low=0.0, high=1.0, low_open=True, high_open=True)
"""(0, 1): some tokens must be chosen for prediction, and some left as context."""
SEED = Range(low=0, high=MAX_SEED, integer=True)
POSITIONS = Range(low=8, high=MAX_POSITIONS, integer=True)
PORT = Range(low=0, high=65535, integer=True)


# The library entry points' settings (dataclass field -> range), so the API refuses what the command line
# refuses; the flag of a field is ``--`` and its name with dashes.
PRETRAIN = {"steps": COUNT, "batch_size": COUNT, "grad_accum": COUNT, "lr": POSITIVE,
            "warmup": NON_NEGATIVE, "weight_decay": NON_NEGATIVE, "clip": NON_NEGATIVE,
            "seed": SEED, "mask_prob": MASK_PROB, "dropout": FRACTION,
            "eval_every": at_least(0), "eval_batches": COUNT, "log_every": COUNT,
            "save_every": COUNT, "keep": at_least(0)}
"""``PretrainConfig`` (``gristmill pretrain``); a warm-up of 1 or more is a step count."""
ADAPT = {**{name: PRETRAIN[name] for name in ("steps", "batch_size", "lr", "warmup", "seed", "eval_every",
                                               "log_every", "save_every", "keep")},
         "mix_share": FRACTION, "val_fraction": FRACTION, "seq_len": POSITIONS}
"""``AdaptConfig`` (``gristmill adapt``): the pretraining settings it passes on, checked before packing."""
FINETUNE = {"lr": POSITIVE, "batch_size": COUNT, "epochs": COUNT, "patience": COUNT, "eval_every": COUNT,
            "min_steps": COUNT, "warmup": FRACTION, "weight_decay": NON_NEGATIVE, "grad_clip": NON_NEGATIVE,
            "eval_batch_size": COUNT}
"""``FineTuneConfig`` (``gristmill finetune``); its warm-up is a fraction of the steps."""


def config_problem(config: Any, ranges: dict[str, Range]) -> str | None:
    """The message for the first field of ``config`` outside its range in ``ranges``, else None."""
    for name, allowed in ranges.items():
        message = problem("--" + name.replace("_", "-"), getattr(config, name), allowed)
        if message:
            return message
    return None


def problem(flag: str, value: Any, allowed: Range) -> str | None:
    """None when ``value`` is allowed, else the one-line message for ``flag``."""
    if value is None or allowed.contains(value):
        return None
    return f"{flag} must be {allowed.describe()}, got {value!r}"


def check(flag: str, value: Any, allowed: Range) -> None:
    message = problem(flag, value, allowed)
    if message:
        raise OptionError(message)


def ranged(allowed: Range) -> Callable[..., Any]:
    """A typer option callback refusing values outside ``allowed`` (one line, exit status 2)."""
    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if ctx.resilient_parsing:
            return value
        flag = max(param.opts, key=len) if param.opts else f"--{param.name}"
        message = problem(flag, value, allowed)
        if message:
            raise fail(message)
        return value

    return callback
