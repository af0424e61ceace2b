"""decontaminate: documents that share an n-gram with an evaluation example are removed or flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gristmill.data.recipe import RecipeError, build_step
from tests.data.dedup.corpus_helpers import text_of


def eval_file(path: Path, texts: list[str], field: str = "text") -> str:
    path.write_text("".join(json.dumps({field: t, "label": "x"}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


QUESTION = ("What is the capital city of the country that hosted the first modern Olympic games "
            "in eighteen ninety six?")


def test_evaluation_set_with_one_example(run_steps, tmp_path: Path) -> None:
    path = eval_file(tmp_path / "qa.jsonl", [QUESTION])
    leaked = f"{text_of(1, 60)} Quiz time: what is the capital city of the country that hosted the FIRST modern " \
             f"Olympic games, in eighteen ninety-six? {text_of(2, 20)}"
    partial = f"{text_of(3, 60)} what is the capital city of the country {text_of(4, 20)}"
    docs = [("clean", text_of(5, 80)), ("leaked", leaked), ("partial", partial)]
    out = run_steps(docs, [("noop", {}), ("decontaminate", {"paths": [path]})])
    assert out.reason("leaked") == f"decontaminate:{path}"
    assert f"{path}:1" in out.rejected["leaked"].detail and "13-gram" in out.rejected["leaked"].detail
    assert {"clean", "partial"} == set(out.kept)
    counters = out.stats["steps"][1]["counters"]
    assert counters["eval_examples"] == 1 and counters["eval_examples_whole"] == 0


def test_short_examples_are_matched_whole(run_steps, tmp_path: Path) -> None:
    path = eval_file(tmp_path / "short.jsonl", ["Dare to be naive.\n\t\t-- R. Buckminster Fuller", "Yes.", "Go."])
    docs = [("quote", f"{text_of(1, 50)}\nDare to be naive -- R. Buckminster Fuller\n{text_of(2, 10)}"),
            ("prefix_only", f"{text_of(3, 50)} dare to be naive and {text_of(4, 10)}"),
            ("yes", "Yes. Go. " + text_of(5, 30))]
    out = run_steps(docs, [("noop", {}), ("decontaminate", {"paths": [path]})])
    assert out.reason("quote") == f"decontaminate:{path}"
    assert "7-gram" in out.rejected["quote"].detail
    assert {"prefix_only", "yes"} == set(out.kept)  # one-word examples are below min_tokens and ignored
    assert out.stats["steps"][1]["counters"]["eval_examples_ignored"] == 2


def test_flag_mode_keeps_documents_and_names_the_file(run_steps, tmp_path: Path) -> None:
    first = eval_file(tmp_path / "a.jsonl", [text_of(10, 30)])
    second = eval_file(tmp_path / "b.jsonl", [text_of(20, 30), text_of(21, 30)], field="question")
    docs = [("from_b", text_of(0, 20) + " " + " ".join(text_of(21, 30).split()[5:20])),
            ("from_a", " ".join(text_of(10, 30).split()[:14])), ("clean", text_of(30, 40))]
    steps = [("noop", {}), ("decontaminate", {"paths": [first], "mode": "flag"}),
             ("decontaminate", {"paths": [second], "text_field": "question"})]
    out = run_steps(docs, steps)
    assert out.kept["from_a"].meta["contamination"] == f"{first}:1"
    assert out.reason("from_b") == f"decontaminate:{second}"
    assert f"{second}:2" in out.rejected["from_b"].detail
    assert out.kept["clean"].meta.get("contamination") is None
    assert out.stats["steps"][1]["counters"]["flagged"] == 1


def test_cjk_contamination_uses_characters(run_steps, tmp_path: Path) -> None:
    example = "床前明月光疑是地上霜举头望明月低头思故乡"
    path = eval_file(tmp_path / "poems.jsonl", [example])
    docs = [("poem", f"今天我们学习一首诗：{example}。这是李白写的。"), ("other", "今天天气很好我们去公园散步吧大家都很开心")]
    out = run_steps(docs, [("noop", {}), ("decontaminate", {"paths": [path]})])
    assert out.reason("poem") == f"decontaminate:{path}" and "other" in out.kept


def test_bad_settings_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        build_step("decontaminate", {"paths": [str(tmp_path / "missing.jsonl")]})
    with pytest.raises(RecipeError, match="paths"):
        build_step("decontaminate", {})
    path = eval_file(tmp_path / "e.jsonl", ["x"])
    with pytest.raises(RecipeError, match="mode"):
        build_step("decontaminate", {"paths": [path], "mode": "delete"})
