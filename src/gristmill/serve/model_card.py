"""The model card: ``README.md`` of an exported model, written by ``gristmill export``.

It reads only JSON files the other stages wrote (``config.json``, ``train.json``, ``metrics.jsonl`` /
``metrics.json``, the token manifest and the corpus ``stats.json``), so this module imports nothing
above ``gristmill.data``. The YAML front matter is shared with the dataset card (``report.cards``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from gristmill.data.storage import atomic_write_text

LICENCE_NOTE = ("license: other  # set this to the licence of your input text (an SPDX id such as cc-by-4.0); "
                "gristmill cannot know it")


def front_matter(meta: dict[str, Any], licence_line: str | None = LICENCE_NOTE) -> str:
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return "---\n" + (licence_line + "\n" if licence_line else "") + text + "---\n"


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _last_eval(run: Path) -> dict[str, Any]:
    last: dict[str, Any] = {}
    path = run / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("kind") == "eval":
                last = row
    return last


def _parameters(config: dict[str, Any]) -> int:
    """Encoder parameters from the config (embeddings + layers), as the BERT formula counts them."""
    h, layers, v = config.get("hidden_size", 0), config.get("num_layers", 0), config.get("vocab_size", 0)
    inter, pos, types = config.get("intermediate_size", 0), config.get("max_position", 0), config.get("type_vocab_size", 0)
    embeddings = (v + pos + types) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h
    return embeddings + layers * layer


def model_card(source: Path, exported_as: str) -> str:
    """The card of a pretraining RUN or fine-tuned FT folder ``source``, exported as ``exported_as``."""
    task = _json(source / "task.json")
    finetuned = _json(source / "metrics.json") if task else {}
    run = Path(finetuned["model"]) if finetuned.get("model") else source
    config = _json(source / "config.json")
    train = _json(run / "train.json")
    manifest = _json(Path(train["data"]) / "manifest.json") if train.get("data") else {}
    corpus = (manifest.get("source") or {}).get("run_stats") or {}
    last = _last_eval(run)
    meta: dict[str, Any] = {"library_name": "transformers",
                            "pipeline_tag": "text-classification" if task else "fill-mask",
                            "tags": ["gristmill", "bert", "encoder"]}
    lines = [front_matter(meta, "license: other  # set this to your model's licence (an SPDX id); gristmill cannot "
                                 "know the licence of its training text"), f"# {source.name}", "",
             f"A BERT-style encoder ({exported_as}) trained with gristmill"
             + (f", fine-tuned for {task.get('type', 'classification')} with labels "
                f"{', '.join(map(str, task.get('labels', [])))}." if task else " by masked-language-model pretraining."),
             "", "## Architecture", "",
             "| | |", "|---|---|",
             f"| size name | {config.get('name') or 'custom'} |",
             f"| layers x hidden x heads | {config.get('num_layers')} x {config.get('hidden_size')} x "
             f"{config.get('num_heads')} |",
             f"| feed-forward | {config.get('intermediate_size')} |",
             f"| max positions | {config.get('max_position')} |",
             f"| parameters (encoder, approx.) | {_parameters(config) / 1e6:.2f} M |",
             f"| blocks | {'pre-LN' if config.get('pre_ln') else 'post-LN (as BERT)'} |", "",
             "## Tokenizer", "",
             f"WordPiece/BPE folder shipped with the model, vocabulary {config.get('vocab_size'):,} "
             f"(hash {(manifest.get('tokenizer') or {}).get('hash', 'unknown')}).", "",
             "## Training data", ""]
    if manifest:
        src = manifest.get("source", {})
        lines += [f"Packed tokens `{train.get('data')}` from `{', '.join(map(str, src.get('input', [])))}`: "
                  f"{src.get('documents', 0):,} documents, sequence length {manifest.get('seq_len')}."]
        if corpus.get("totals"):
            ct = corpus["totals"]
            lines += ["", f"The corpus run (`{corpus.get('file')}`) kept {ct.get('kept', 0):,} of "
                      f"{ct.get('docs_in', 0):,} input documents; its `report.html` and `README.md` describe it."]
    else:
        lines.append("Unknown (no train.json / token manifest next to the model).")
    lines += ["", "## Training budget", ""]
    if train:
        lines += [f"{train.get('steps')} steps of {train.get('batch_size')} sequences, peak learning rate "
                  f"{train.get('lr')}, {train.get('schedule')} schedule, mask probability {train.get('mask_prob')}, "
                  f"seed {train.get('seed')}."]
        prov = train.get("provenance") or {}
        if prov:
            lines += ["", f"gristmill {prov.get('gristmill')} (commit {prov.get('git_commit') or 'unknown'}), "
                      f"torch {prov.get('torch')}, device {prov.get('device')}, {prov.get('threads')} threads."]
    else:
        lines.append("Unknown.")
    lines += ["", "## Evaluation", ""]
    if last:
        lines.append(f"Pretraining validation at step {last.get('step')}: masked-LM loss {last.get('loss', 0):.3f}, "
                     f"masked-token accuracy {last.get('accuracy', 0):.3f}, perplexity {last.get('perplexity', 0):.1f}.")
    for split in ("dev", "test"):
        if finetuned.get(split):
            s = finetuned[split]
            lines.append(f"Fine-tuned, {split}: accuracy {s.get('accuracy', 0):.4f}, macro-F1 {s.get('macro_f1', 0):.4f}.")
    if not last and not finetuned:
        lines.append("No evaluation figures were recorded.")
    lines += ["", "## Intended use and limits", "",
              "A small research encoder: fine-tune it for classification or tagging of text like its training "
              "data. It is not a general language model; it has seen only the corpus above and inherits its "
              "biases (`gristmill bias` measures some of them). Do not use it for decisions about people.", ""]
    return "\n".join(lines)


def write_model_card(source: str | Path, out: str | Path, exported_as: str = "transformers") -> Path:
    path = Path(out) / "README.md"
    atomic_write_text(path, model_card(Path(source), exported_as))
    return path
