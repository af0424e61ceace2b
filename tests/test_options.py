"""Numeric flags out of range: one line naming the flag, exit status 2, before any file is read.

Every case names paths that do not exist, so a message about the flag (not about a missing file) shows
the range was checked first, while the command line was parsed."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.options import COUNT, FRACTION, MASK_PROB, POSITIONS, POSITIVE, Range, check, problem

NOWHERE = "/nonexistent/gristmill-test"

PRETRAIN = ["pretrain", "--data", NOWHERE, "--out", NOWHERE + "/run"]
FINETUNE = ["finetune", "--model", NOWHERE, "--train", NOWHERE + "/t.jsonl", "--out", NOWHERE + "/ft"]
CURVE = ["curve", "--model", NOWHERE, "--train", NOWHERE, "--test", NOWHERE, "--out", NOWHERE + "/c"]
TOKENIZE = ["tokenize", "-i", NOWHERE, "-t", NOWHERE, "-o", NOWHERE + "/t"]
TOKENIZER_TRAIN = ["tokenizer", "train", "-i", NOWHERE, "-o", NOWHERE + "/tok"]
PREDICT = ["predict", NOWHERE, "-i", NOWHERE, "-o", NOWHERE + "/o.jsonl"]
SERVE = ["serve", NOWHERE]

CASES = [
    # (command, flag, bad value)
    *[(PRETRAIN, flag, value) for flag, value in [
        ("--batch-size", "0"), ("--batch-size", "-4"), ("--lr", "-1"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "inf"),
        ("--mask-prob", "0"), ("--mask-prob", "2"), ("--mask-prob", "1"), ("--mask-prob", "nan"), ("--steps", "0"),
        ("--warmup", "-0.1"), ("--warmup", "nan"), ("--dropout", "1"), ("--dropout", "-0.5"), ("--seed", "-1"),
        ("--grad-accum", "0"), ("--clip", "nan"), ("--weight-decay", "-1"), ("--eval-batches", "0"),
        ("--eval-every", "-1"), ("--log-every", "0"), ("--save-every", "0"), ("--keep", "-1"), ("--threads", "0")]],
    *[(FINETUNE, flag, value) for flag, value in [
        ("--batch-size", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--lr", "-inf"), ("--epochs", "0"), ("--epochs", "-3"),
        ("--max-length", "100000"), ("--max-length", "4"), ("--per-class", "0"), ("--patience", "0"),
        ("--seed", "-1"), ("--threads", "0")]],
    *[(CURVE, flag, value) for flag, value in [("--seeds", "0"), ("--lr", "nan"), ("--batch-size", "0"),
                                                ("--max-length", "9000")]],
    *[(TOKENIZE, flag, value) for flag, value in [
        ("--seq-len", "100000"), ("--seq-len", "4"), ("--val-fraction", "1"), ("--val-fraction", "nan"),
        ("--val-fraction", "-0.1"), ("--workers", "0"), ("--docs-per-unit", "0")]],
    *[(TOKENIZER_TRAIN, flag, value) for flag, value in [("--vocab-size", "0"), ("--model-max-length", "100000"),
                                                          ("--min-frequency", "-1"), ("--max-docs", "0")]],
    *[(PREDICT, flag, value) for flag, value in [("--batch-size", "0"), ("--window", "0"), ("--threads", "-2")]],
    *[(SERVE, flag, value) for flag, value in [
        ("--port", "70000"), ("--port", "-1"), ("--batch-size", "0"), ("--max-batch", "0"), ("--max-texts", "0"),
        ("--max-body-bytes", "0"), ("--max-wait-ms", "nan"), ("--max-wait-ms", "-1"), ("--max-connections", "0"),
        ("--read-timeout", "0"), ("--read-timeout", "inf"), ("--keep-alive", "0")]],
    (["fill-mask", NOWHERE, "a [MASK]"], "--top-k", "0"),
    (["export", NOWHERE, "--format", "onnx", "--out", NOWHERE + "/x"], "--eval-limit", "0"),
]


@pytest.mark.parametrize("command,flag,value", CASES, ids=[f"{c[0]}{' ' + c[1] if c[0] == 'tokenizer' else ''} "
                                                            f"{f}={v}" for c, f, v in CASES])
def test_out_of_range_flags_are_one_line_exit_2(command: list[str], flag: str, value: str) -> None:
    result = CliRunner().invoke(app, [*command, f"{flag}={value}"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0], result.output
    assert "Traceback" not in result.output and NOWHERE not in result.output  # nothing was opened first


def test_in_range_values_pass_the_check() -> None:
    # Accepted flags reach the command, which then reports the missing input instead of a range.
    result = CliRunner().invoke(app, [*TOKENIZE, "--seq-len", "512", "--val-fraction", "0", "--workers", "1"])
    assert result.exit_code == 2 and "--seq-len" not in result.output and "tokenizer" in result.output


@pytest.mark.parametrize("allowed,good,bad", [
    (COUNT, [1, 10**400], [0, -1, 1.5, True, "3", float("nan")]),
    (POSITIVE, [1e-12, 3, 10**30], [0, -1e-9, float("nan"), float("inf"), "1"]),
    (FRACTION, [0, 0.999], [1, -0.0001, float("nan")]),
    (MASK_PROB, [0.15, 0.999], [0, 1, 2, float("nan")]),
    (POSITIONS, [8, 8192], [7, 8193, 100000]),
])
def test_ranges(allowed: Range, good: list, bad: list) -> None:
    assert all(allowed.contains(v) for v in good)
    assert not any(allowed.contains(v) for v in bad)
    assert problem("--x", None, allowed) is None  # an option left unset
    with pytest.raises(ValueError, match="--x must be"):
        check("--x", bad[0], allowed)
    assert "nan" in problem("--lr", math.nan, POSITIVE)


def test_api_configs_refuse_what_the_command_line_refuses() -> None:
    from gristmill.train.finetune import FineTuneConfig
    from gristmill.train.finetuned import FineTuneError
    from gristmill.train.pretrain import PretrainConfig, PretrainError

    for bad in ({"lr": math.nan}, {"mask_prob": 0.0}, {"mask_prob": 2.0}, {"batch_size": 0}, {"warmup": -1.0},
                {"clip": math.inf}, {"seed": -1}):
        with pytest.raises(PretrainError, match="--" + next(iter(bad)).replace("_", "-")):
            PretrainConfig(data="d", out="o", **bad).check()
    for bad in ({"lr": -1.0}, {"lr": math.nan}, {"batch_size": 0}, {"epochs": 0}, {"patience": 0}):
        with pytest.raises(FineTuneError, match="--" + next(iter(bad)).replace("_", "-")):
            FineTuneConfig(**bad)


def test_adapt_checks_its_settings_with_pretrains_ranges_before_any_work(tmp_path) -> None:
    from gristmill.options import ADAPT, PRETRAIN
    from gristmill.train.adapt import AdaptConfig, AdaptError, adapt

    assert all(ADAPT[name] is PRETRAIN[name] for name in ADAPT if name in PRETRAIN)  # one table, not a copy
    for bad in ({"steps": 0}, {"lr": math.nan}, {"batch_size": 0}, {"mix_share": 1.5}, {"val_fraction": -0.1},
                {"seq_len": 100_000}, {"seed": -1}):
        cfg = AdaptConfig(run=str(tmp_path / "no-run"), texts=[str(tmp_path / "none.txt")], out=str(tmp_path / "o"),
                          **bad)
        with pytest.raises(AdaptError, match="--" + next(iter(bad)).replace("_", "-") + " must be"):
            adapt(cfg)
    assert not (tmp_path / "o").exists()
