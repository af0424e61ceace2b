"""Generation, perplexity and POST /generate on a small decoder pretrained with the real loop."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.model.decoder import CausalLM
from gristmill.serve.generate import (
    GenerateError,
    RowText,
    Sampling,
    TextGenerator,
    apply_repetition_penalty,
    filter_top_k,
    filter_top_p,
)
from gristmill.serve.perplexity import perplexity, score_documents, windows
from gristmill.serve.server import Limits, create_app, generate_engine
from gristmill.train.checkpoint import save_run_weights
from tests.decoder_run import build_decoder_run
from tests.sample import write_sample_head

# slow: pretrains a small decoder first; `pytest -m "not slow"` skips it
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_decoder_run(tmp_path_factory.mktemp("decoder"), steps=60)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generator(run: Path) -> TextGenerator:
    return TextGenerator.from_run(run)


PROMPTS = ["The package provides", "This is a library for", "a", "GNU"]


def test_greedy_with_and_without_the_cache_gives_the_same_tokens(generator):
    sampling = Sampling(max_new_tokens=24, ignore_eos=True)
    # Prompts of different lengths in one batch: left padding, per-row positions.
    with_cache = generator.generate(PROMPTS, sampling)
    passes = generator.forward_passes
    without = generator.generate(PROMPTS, sampling, use_cache=False)
    assert [c.tokens for c in with_cache] == [c.tokens for c in without]
    assert all(len(c.tokens) == 24 and c.finish_reason == "length" for c in with_cache)
    # Each prompt alone gives the same tokens as in the padded batch.
    for prompt, batched in zip(PROMPTS, with_cache, strict=True):
        assert generator.generate([prompt], sampling)[0].tokens == batched.tokens
    assert passes >= 24  # one forward pass per new token (the prompt's included)


def test_each_cached_step_feeds_the_model_one_position(generator, monkeypatch):
    widths = []
    real = generator.model.forward

    def spy(ids, *args, **kwargs):
        widths.append(ids.shape[1])
        return real(ids, *args, **kwargs)

    monkeypatch.setattr(generator.model, "forward", spy)
    generator.generate(["The package provides"], Sampling(max_new_tokens=6, ignore_eos=True))
    assert widths[0] == len(generator.encode("The package provides")) and widths[1:] == [1] * 5
    widths.clear()
    generator.generate(["The package provides"], Sampling(max_new_tokens=6, ignore_eos=True), use_cache=False)
    assert widths == list(range(widths[0], widths[0] + 6))


def test_empty_prompt_zero_tokens_and_a_prompt_longer_than_the_context(generator):
    (empty,) = generator.generate([""], Sampling(max_new_tokens=5, ignore_eos=True))
    assert empty.prompt_tokens == 1 and len(empty.tokens) == 5  # generated from the start token alone
    (none,) = generator.generate(["The package"], Sampling(max_new_tokens=0))
    assert none.tokens == [] and none.text == "" and none.finish_reason == "length"
    long = "word " * 200
    with pytest.raises(GenerateError, match="context is 64"):
        generator.generate([long], Sampling(max_new_tokens=4))
    (cut,) = generator.generate([long], Sampling(max_new_tokens=4, truncate=True))
    assert cut.prompt_tokens == 63 and len(cut.tokens) == 1  # the context has room for one more token only
    prompt = [generator.config.bos_id] + generator.encode("word " * 200, truncate=True)[1:56]
    (near,), (reason,) = generator.generate_ids([prompt], Sampling(max_new_tokens=50, ignore_eos=True))
    assert len(prompt) + len(near) == 64 and reason == "length"  # stops when the context is full


def test_sampling_is_seeded_and_top_k_one_is_greedy(generator):
    base = dict(max_new_tokens=16, temperature=1.0, ignore_eos=True)
    a = generator.generate(PROMPTS[:2], Sampling(**base, seed=1))
    b = generator.generate(PROMPTS[:2], Sampling(**base, seed=1))
    c = generator.generate(PROMPTS[:2], Sampling(**base, seed=2))
    assert [x.tokens for x in a] == [x.tokens for x in b] != [x.tokens for x in c]
    greedy = generator.generate(PROMPTS[:2], Sampling(max_new_tokens=16, ignore_eos=True))
    top1 = generator.generate(PROMPTS[:2], Sampling(**base, top_k=1, seed=5))
    assert [x.tokens for x in top1] == [x.tokens for x in greedy]
    with pytest.raises(GenerateError, match="top_p"):
        generator.generate(["x"], Sampling(top_p=0.0))


def test_score_filters():
    scores = torch.tensor([[2.0, 1.0, -1.0, 0.5]])
    seen = torch.tensor([[True, False, True, False]])
    assert apply_repetition_penalty(scores, seen, 2.0).tolist() == [[1.0, 1.0, -2.0, 0.5]]
    assert torch.isinf(filter_top_k(scores, 2)).tolist() == [[False, False, True, True]]
    # probabilities 0.61, 0.22, 0.03, 0.14: 0.7 needs the first two
    assert torch.isinf(filter_top_p(scores, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_top_p(scores, 0.5)).tolist() == [[False, True, True, True]]


def test_repetition_penalty_reduces_repeats(generator):
    plain = generator.generate(["the the the"], Sampling(max_new_tokens=30, ignore_eos=True))[0].tokens
    penalised = generator.generate(["the the the"], Sampling(max_new_tokens=30, ignore_eos=True,
                                                             repetition_penalty=3.0))[0].tokens
    assert len(set(penalised)) > len(set(plain))


def test_stop_strings_cut_the_text_and_streaming_gives_the_same_text(generator):
    (free,) = generator.generate(["The package provides"], Sampling(max_new_tokens=30, ignore_eos=True))
    assert len(free.text) > 4
    stop = free.text[2:4]
    pieces: list[str] = []
    (stopped,) = generator.generate(["The package provides"], Sampling(max_new_tokens=30, stop=[stop]),
                                    stream=lambda row, piece: pieces.append(piece))
    assert stopped.finish_reason == "stop" and stopped.text == free.text[:free.text.find(stop)]
    assert "".join(pieces) == stopped.text and stop not in "".join(pieces)
    streamed: list[str] = []
    (again,) = generator.generate(["The package provides"], Sampling(max_new_tokens=30, ignore_eos=True),
                                  stream=lambda row, piece: streamed.append(piece))
    assert "".join(streamed) == again.text == free.text and len(streamed) > 1


def test_row_text_holds_back_a_possible_stop_string_and_half_characters():
    row = RowText(lambda ids: "".join(chr(i) for i in ids), ["END"])
    row.update([ord(c) for c in "abcE"])
    assert row.new_piece() == "ab"  # "cE" could still become "...END"
    row.update([ord(c) for c in "abcEN\ufffd"])
    assert row.new_piece() == "c"  # the unfinished character does not count towards the held-back "EN"
    row.update([ord(c) for c in "abcENDxyz"])
    assert row.stopped and row.text == "abc" and row.new_piece(final=True) == ""


def test_eos_ends_a_row(generator):
    eos = generator.config.eos_id
    (c,) = generator.generate([""], Sampling(max_new_tokens=60, temperature=1.0, seed=0))
    assert c.finish_reason in ("eos", "length")
    if c.finish_reason == "eos":
        assert c.tokens[-1] == eos and eos not in c.tokens[:-1]


def test_perplexity_windows_and_scores(run, generator, tmp_path):
    assert windows(10, 64, 32) == [(0, 10, 1)]
    assert windows(100, 64, 32) == [(0, 64, 1), (32, 96, 64), (64, 100, 96)]
    held_out = [json.loads(line)["text"] for line in write_sample_head(tmp_path / "s.jsonl", 320).read_text().splitlines()]
    docs = [("a", "The package provides a library for reading files."), ("b", held_out[-1]), ("c", "")]
    scores, summary = perplexity(run, docs)
    by_id = {s.id: s for s in scores}
    assert by_id["c"].tokens == 1  # the end of an empty document is still predicted
    assert by_id["b"].tokens > 64  # longer than the context: scored in windows, each token once
    # The pretrained model finds unseen real text likelier than the same model before training does.
    untrained = tmp_path / "untrained"
    shutil.copytree(run, untrained)
    torch.manual_seed(0)
    save_run_weights(CausalLM(generator.config), untrained / "model.safetensors")
    before, _ = perplexity(untrained, docs[1:2])
    assert by_id["b"].perplexity < 0.8 * before[0].perplexity
    total = sum(s.tokens for s in scores)
    assert summary["tokens"] == total
    assert math.isclose(summary["perplexity"], math.exp(sum(s.nll for s in scores) / total), rel_tol=1e-9)
    # A document that fits the context gets the same score alone or in a batch, and matches the model's logits.
    ids = [generator.config.bos_id, *generator.tokenizer.encode(docs[0][1], add_special_tokens=False).ids,
           generator.config.eos_id]
    [(n, nll)] = score_documents(generator.model, generator.config, [ids])
    with torch.no_grad():
        logits = generator.model(torch.tensor([ids]))[0, :-1]
    expected = float(torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
    assert n == len(ids) - 1 and math.isclose(nll, expected, rel_tol=1e-5)
    assert math.isclose(by_id["a"].nll, nll, rel_tol=1e-5)


def test_generate_and_perplexity_commands(run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", str(run), "--prompt", "The package", "-n", "8", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("The package")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    result = runner.invoke(app, ["generate", str(run), "--prompts", str(prompts), "-n", "5", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == PROMPTS and all(r["new_tokens"] <= 5 for r in rows)
    result = runner.invoke(app, ["generate", str(run), "--prompt", "word " * 200])
    assert result.exit_code == 2 and "context" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["generate", str(run)])
    assert result.exit_code == 2
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "x", "text": "The package provides a library."}) + "\n"
                    + json.dumps({"id": "y", "text": "qq zz"}) + "\n")
    result = runner.invoke(app, ["perplexity", str(run), "--input", str(docs), "--out", str(tmp_path / "ppl.jsonl")])
    assert result.exit_code == 0, result.output
    assert "corpus perplexity" in result.output
    assert [json.loads(line)["id"] for line in (tmp_path / "ppl.jsonl").read_text().splitlines()] == ["x", "y"]
    result = runner.invoke(app, ["export", str(run), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    result = runner.invoke(app, ["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "back" / "config.json").read_text())["arch"] == "decoder"
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    result = runner.invoke(app, ["perplexity", str(run), "--input", str(tmp_path / "bad.jsonl")])
    assert result.exit_code == 2 and "text" in result.output
    # The one JSONL reader: a bad prompt line stops with one line naming file:line; compressed prompts work.
    (tmp_path / "bad-prompts.jsonl").write_text(json.dumps({"prompt": "ok"}) + "\n{not json\n")
    result = runner.invoke(app, ["generate", str(run), "--prompts", str(tmp_path / "bad-prompts.jsonl"), "-n", "1"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "bad-prompts.jsonl:2: invalid JSON" in message and "Traceback" not in message
    with gzip.open(tmp_path / "prompts.jsonl.gz", "wt") as f:
        f.write(prompts.read_text())
    result = runner.invoke(app, ["generate", str(run), "--prompts", str(tmp_path / "prompts.jsonl.gz"), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["prompt"] for line in result.stdout.splitlines()] == PROMPTS


def test_generate_endpoint(generator):
    with TestClient(create_app(generate_engine(generator), Limits(max_texts=3, max_new_tokens=16))) as client:
        assert client.get("/health").json()["kind"] == "causal-lm"
        paths = client.get("/openapi.json").json()["paths"]
        assert "/generate" in paths and "/fill-mask" not in paths and "/predict" not in paths
        one = client.post("/generate", json={"inputs": "The package", "max_new_tokens": 6})
        assert one.status_code == 200, one.text
        [completion] = one.json()["completions"]
        expected = generator.generate(["The package"], Sampling(max_new_tokens=6))[0]
        assert completion["text"] == expected.text and completion["new_tokens"] == len(expected.tokens)
        many = client.post("/generate", json={"inputs": ["a", "The package"], "max_new_tokens": 6}).json()
        assert many["completions"][1]["text"] == expected.text
        for body, status in [({"inputs": ["a"] * 4}, 413), ({"inputs": "a", "max_new_tokens": 17}, 422),
                             ({"inputs": "word " * 200}, 422), ({"inputs": "a", "top_p": 0}, 422),
                             ({"inputs": "a", "stop": [""]}, 422), ({"inputs": "a", "model": "x"}, 422),
                             ({"inputs": 3}, 422)]:
            response = client.post("/generate", json=body)
            assert response.status_code == status, (body, response.text)
