"""Export a fine-tuned classifier: ONNX (fp32 and int8) with a parity report, and a transformers folder.

``export_onnx(FT, OUT)`` writes a self-contained folder that the onnx backend of ``gristmill predict`` and
``gristmill serve`` loads without the PyTorch weights::

    OUT/model.onnx         fp32, dynamic batch and sequence axes; inputs input_ids, attention_mask,
                           token_type_ids (int64 [batch, sequence]); output logits [batch, labels]
    OUT/model.int8.onnx    with quantize="int8": onnxruntime dynamic quantization (int8 weights)
    OUT/task.json, OUT/config.json, OUT/tokenizer/   copied from FT
    OUT/export.json        parity with PyTorch: argmax agreement and max probability difference per
                           model, and accuracies on a labelled file when one is given

``export_hf_classifier(FT, OUT)`` writes a ``BertForSequenceClassification`` folder (with the tokenizer)
that ``transformers`` loads offline; the benchmark uses it to run the peer pipeline on the same weights.

This module converts and measures; it never downloads and never loads pickles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gristmill import folders
from gristmill.folders import FinetunedFolder
from gristmill.serve.backends import (
    ONNX_FP32,
    ONNX_INT8,
    Backend,
    OnnxBackend,
    PredictError,
    TorchBackend,
    read_task,
)
from gristmill.serve.classifier import Classifier
from gristmill.train.tasks import TaskError, load_sequence_examples

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

    from gristmill.model.config import ModelConfig
    from gristmill.train.tasks import TaskSpec

OPSET = 18


def _copy_task_files(ft: Path, out: Path) -> None:
    """An export folder keeps the FT folder's task, config and tokenizer under the same names."""
    source, target = FinetunedFolder(ft), FinetunedFolder(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (folders.TASK, folders.CONFIG):
        if (ft / name).is_file():
            shutil.copy2(ft / name, out / name)
    if target.tokenizer.exists():
        shutil.rmtree(target.tokenizer)
    shutil.copytree(source.tokenizer, target.tokenizer)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's notes (missing torchvision ops) and the quantizer's pre-processing hint."""
    class DropHint(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-processing before quantization" not in record.getMessage()

    exporter = logging.getLogger("torch.onnx")
    level = exporter.level
    hint = DropHint()
    exporter.setLevel(logging.ERROR)
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        exporter.setLevel(level)
        logging.getLogger().removeFilter(hint)


def export_torch_to_onnx(model: torch.nn.Module, path: Path, max_position: int, opset: int = OPSET) -> None:
    """``torch.onnx.export`` (the dynamo exporter) with dynamic batch and sequence axes."""
    import warnings

    import torch

    class Logits(torch.nn.Module):
        # Positional inputs with fixed names, so the graph's signature does not depend on the model's kwargs.
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)

    wrapper = Logits(model).eval()
    # Example sizes other than 0, 1 and each other, so the exporter does not specialise the axes.
    batch, seq = 3, 11
    ids = torch.randint(5, 50, (batch, seq), dtype=torch.long)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, -3:] = 0
    types = torch.zeros(batch, seq, dtype=torch.long)
    b = torch.export.Dim("batch", min=1, max=65536)
    s = torch.export.Dim("sequence", min=1, max=max_position)
    axes = {0: b, 1: s}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _quiet(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper, (ids, mask, types), dynamo=True, opset_version=opset,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes},
            verbose=False,
        )
    assert program is not None
    program.save(str(path), external_data=False)


def quantize_onnx_int8(src: Path, dst: Path) -> None:
    """onnxruntime dynamic quantization: int8 weights for MatMul/Gemm, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=False)


def check_texts(tokenizer: Tokenizer, n: int = 64, seed: int = 0, max_words: int = 200) -> list[str]:
    """Texts of varied length made of the tokenizer's own vocabulary, for parity checks without a data file."""
    vocab = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
             if not (t.startswith("[") and t.endswith("]")) and not t.startswith("##") and t.isprintable()]
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, max_words))) for _ in range(n)]


def parity(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Argmax agreement and largest absolute probability difference between two probability matrices."""
    return {"argmax_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
            "max_prob_diff": float(np.abs(reference - other).max())}


def read_labelled(path: str | Path, text_field: str, label_field: str, pair_field: str | None = None,
                  limit: int | None = None) -> tuple[list[str], list[str], list[str] | None]:
    """Texts, gold labels (and second texts) of a labelled JSONL file, as fine-tuning reads it."""
    try:
        examples = load_sequence_examples(path, text_field, label_field, pair_field)
    except TaskError as exc:
        raise PredictError(str(exc)) from None
    examples = examples[:limit] if limit else examples
    pairs = [ex.text_pair or "" for ex in examples] if pair_field else None
    return [ex.text for ex in examples], [ex.label for ex in examples], pairs


def accuracy(clf: Classifier, texts: list[str], gold: list[str], pairs: list[str] | None) -> tuple[float, np.ndarray]:
    probs = clf.predict_proba(texts, pairs)
    predicted = [clf.labels[i] for i in probs.argmax(1)]
    return float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)])), probs


def export_onnx(
    ft_dir: str | Path, out_dir: str | Path, quantize: str = "none", verify: bool = True,
    eval_file: str | Path | None = None, eval_limit: int | None = None, torch_int8: bool = False,
    opset: int = OPSET, threads: int | None = None, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export ``FT`` to ``OUT/model.onnx`` (and ``model.int8.onnx``); return and write the parity report.

    ``verify`` compares each exported model with PyTorch on ``eval_file`` (or on generated texts), and,
    with ``eval_file``, reports the accuracy of every variant; ``torch_int8`` adds PyTorch's in-process
    dynamic quantization to that comparison.
    """
    from gristmill.train.finetuned import load_finetuned

    ft, out = Path(ft_dir), Path(out_dir)
    if quantize not in ("none", "int8"):
        raise PredictError(f"unknown quantization {quantize!r}; use none or int8")
    spec = read_task(ft)
    say = log or (lambda _msg: None)
    loaded = load_finetuned(ft)
    model = loaded.model.eval()
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    export_torch_to_onnx(model, out / ONNX_FP32, int(model.config.max_position), opset)
    report: dict[str, Any] = {"source": str(ft.resolve()), "opset": opset, "files": {ONNX_FP32: (out / ONNX_FP32).stat().st_size}}
    say(f"wrote {out / ONNX_FP32} ({report['files'][ONNX_FP32] / 1e6:.1f} MB)")
    if quantize == "int8":
        quantize_onnx_int8(out / ONNX_FP32, out / ONNX_INT8)
        report["files"][ONNX_INT8] = (out / ONNX_INT8).stat().st_size
        say(f"wrote {out / ONNX_INT8} ({report['files'][ONNX_INT8] / 1e6:.1f} MB)")
    elif (out / ONNX_INT8).exists():
        (out / ONNX_INT8).unlink()  # a stale int8 model from an earlier export would not match this one
    _copy_task_files(ft, out)
    report["export_seconds"] = round(time.perf_counter() - started, 2)
    if verify:
        report.update(compare_variants(loaded, spec, out, eval_file, eval_limit, torch_int8, threads))
    folders.write_record(out / "export.json", report)
    return report


def compare_variants(loaded: Any, spec: TaskSpec, out: Path, eval_file: str | Path | None, eval_limit: int | None,
                     torch_int8: bool, threads: int | None = None) -> dict[str, Any]:
    """Parity of every exported variant with the PyTorch model, and accuracies when a labelled file is given."""
    def make(backend: Backend) -> Classifier:
        return Classifier(backend, loaded.tokenizer, list(spec.labels), int(spec.max_length), batch_size=32,
                          pair_field=spec.pair_field, text_field=spec.text_field)

    reference = make(TorchBackend(loaded.model))
    variants: dict[str, Classifier] = {"onnx": make(OnnxBackend(out / ONNX_FP32, threads))}
    if (out / ONNX_INT8).exists():
        variants["onnx-int8"] = make(OnnxBackend(out / ONNX_INT8, threads))
    if torch_int8:
        import copy

        variants["torch-int8"] = make(TorchBackend(copy.deepcopy(loaded.model), quantize="int8"))
    result: dict[str, Any] = {}
    if eval_file is not None:
        texts, gold, pairs = read_labelled(eval_file, spec.text_field, spec.label_field, spec.pair_field, eval_limit)
        ref_acc, ref_probs = accuracy(reference, texts, gold, pairs)
        result["checked_on"] = {"file": str(eval_file), "examples": len(texts)}
        result["accuracy"] = {"torch": ref_acc}
        result["parity"] = {}
        for name, clf in variants.items():
            acc, probs = accuracy(clf, texts, gold, pairs)
            result["accuracy"][name] = acc
            result["parity"][name] = parity(ref_probs, probs)
    else:
        texts = check_texts(loaded.tokenizer)
        pairs = check_texts(loaded.tokenizer, seed=1) if spec.pair_field else None
        ref_probs = reference.predict_proba(texts, pairs)
        result["checked_on"] = {"file": None, "examples": len(texts), "texts": "generated from the vocabulary"}
        result["parity"] = {name: parity(ref_probs, clf.predict_proba(texts, pairs)) for name, clf in variants.items()}
    return result


# ----------------------------------------------------------------------------------- transformers export


def to_bert_classifier_state_dict(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """gristmill SequenceClassifier state dict -> ``BertForSequenceClassification`` names.

    The encoder's names are mapped by :func:`gristmill.model.hf.to_bert_state_dict` (written for the MLM
    model, so it is given a placeholder MLM bias whose ``cls.*`` output is dropped); the pooler and the
    classifier keep BERT's layout and only need their prefix.
    """
    import torch

    from gristmill.model.hf import to_bert_state_dict

    with_head = {**state, "head.bias": torch.zeros(config.vocab_size)}
    out = {k: v for k, v in to_bert_state_dict(with_head, config).items() if not k.startswith("cls.")}
    for kind in ("weight", "bias"):
        out[f"bert.pooler.dense.{kind}"] = state[f"pooler.dense.{kind}"].contiguous()
        out[f"classifier.{kind}"] = state[f"classifier.{kind}"].contiguous()
    return out


def export_hf_classifier(ft_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a ``BertForSequenceClassification`` folder (config with id2label, weights, tokenizer) for ``FT``."""
    from transformers import BertForSequenceClassification

    from gristmill.model.hf import to_bert_config
    from gristmill.train.finetuned import load_finetuned

    ft, out = Path(ft_dir), Path(out_dir)
    spec = read_task(ft)
    loaded = load_finetuned(ft)
    config = loaded.model.config
    if config.pooling != "cls":
        raise PredictError(f"{ft} pools the {config.pooling} of the tokens; BertForSequenceClassification pools [CLS] "
                           "(use the ONNX export instead)")
    bert_config = to_bert_config(config)
    bert_config.architectures = ["BertForSequenceClassification"]
    bert_config.num_labels = len(spec.labels)
    bert_config.id2label = dict(enumerate(spec.labels))
    bert_config.label2id = {label: i for i, label in enumerate(spec.labels)}
    bert = BertForSequenceClassification(bert_config)
    result = bert.load_state_dict(to_bert_classifier_state_dict(loaded.model.state_dict(), config), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise AssertionError(f"name map incomplete: missing {missing}, unexpected {result.unexpected_keys}")
    out.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(out)
    for item in FinetunedFolder(ft).tokenizer.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    # The pipeline truncates at the tokenizer's model_max_length; make it the length the model was tuned with.
    tok_config_path = out / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text(encoding="utf-8")) if tok_config_path.exists() else {}
    tok_config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    tok_config["model_max_length"] = int(spec.max_length)
    for key, token in (("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]")):
        tok_config.setdefault(f"{key}_token", token)
    folders.write_record(tok_config_path, tok_config)
    return out
