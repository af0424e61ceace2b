"""recipes/web-en.yaml and recipes/web-zh.yaml: valid, and doing their job on the bundled sample."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, run_steps
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import load_recipe
from gristmill.data.steps import text as tx

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "sample" / "corpus.jsonl.gz"
LABELS = ROOT / "sample" / "corpus.labels.jsonl.gz"
N_DOCS = 1500


def test_recipes_load_with_quickstart_paths():
    en = load_recipe(ROOT / "recipes" / "web-en.yaml")
    assert en.input.paths == ["sample/corpus.jsonl.gz"] and en.output.path == "runs/quickstart/corpus"
    names = [s.name for s in en.steps]
    assert names[:3] == ["normalize", "boilerplate_lines", "language"]
    assert {"gopher_quality", "gopher_repetition", "pii", "blocklist"} <= set(names)
    assert names[-3:] == ["exact_dedup", "minhash_dedup", "decontaminate"]
    zh = load_recipe(ROOT / "recipes" / "web-zh.yaml")
    assert all(getattr(s, "language", "zh") == "zh" for s in zh.steps if s.name.startswith(("gopher", "fineweb")))


@pytest.mark.slow
def test_web_en_on_the_sample(tmp_path):
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(N_DOCS), f)]
    with gzip.open(LABELS, "rt", encoding="utf-8") as f:
        labels = {lab["id"]: lab for lab in (json.loads(line) for _, line in zip(range(N_DOCS), f))}
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pipeline = load_recipe(ROOT / "recipes" / "web-en.yaml", output_override=str(tmp_path / "out"),
                           input_override=[str(src)])
    result = pipeline.run(workers=1, progress=False)
    kept = {d.id: d for d in read_documents(tmp_path / "out" / "kept")}
    rejected = {d.id: d for d in read_documents(tmp_path / "out" / "rejected")}
    assert result.docs_in == N_DOCS == len(kept) + len(rejected)
    assert all(":" in d.reason for d in rejected.values())
    assert all(d.meta["lang"] == "en" for d in kept.values())

    def share_rejected(defect):
        ids = [i for i, lab in labels.items() if defect in lab["defects"]]
        return sum(i in rejected for i in ids) / len(ids), len(ids)

    for defect, target in (("too_short", 1.0), ("symbol_junk", 0.9), ("wrong_language", 0.9), ("gibberish", 0.85)):
        share, n = share_rejected(defect)
        assert n > 0 and share >= target, (defect, share, n)
    # inserted PII never survives in kept text
    for i, lab in labels.items():
        if i in kept:
            for p in lab["meta"].get("pii", {}).get("pii", []):
                assert p["value"] not in kept[i].text
    clean_long = [i for i, lab in labels.items() if not lab["defects"]
                  and len(tx.words(next(r["text"] for r in rows if r["id"] == i))) >= 50]
    # natural duplicates among clean documents are rightly removed by the corpus steps
    dedup = ("exact_dedup", "minhash_dedup", "decontaminate")
    wrongly = sum(i in rejected and not rejected[i].reason.startswith(dedup) for i in clean_long)
    assert wrongly / len(clean_long) < 0.06, Counter(rejected[i].reason for i in clean_long if i in rejected)


def test_web_zh_keeps_chinese_and_rejects_the_rest():
    pipeline = load_recipe(ROOT / "recipes" / "web-zh.yaml")
    article = (
        "作为系统管理员，粗略地了解系统的启动和配置过程是很有必要的。本章介绍了启动过程的各个阶段，"
        "并说明了在每个阶段中可以进行的配置工作。计算机系统在加电后会经历几个阶段，从固件初始化到内核加载，"
        "再到用户空间的服务启动。了解这些阶段有助于在系统无法正常启动时找到问题所在。\n\n"
        "第一阶段由固件完成，它负责检测硬件并加载引导程序。第二阶段由引导程序完成，它读取配置文件并加载内核"
        "和初始内存盘。第三阶段是一个迷你系统，它挂载真正的根文件系统。最后，常规系统启动各种服务，"
        "用户就可以登录并开始工作了。如有问题，请发邮件到 admin@example.com 联系管理员。"
    )
    english = ("The package provides a small library that reads and writes archive files in several formats. "
               "Most users install it together with the documentation, which explains the options.") * 3
    docs = [Document("zh", article), Document("en", english)]
    steps = [s for s in pipeline.steps if not isinstance(s, CorpusStep)]  # dedup needs a whole run (test_web_zh.py)
    kept, rejected = run_steps(docs, steps, [StepStats() for _ in steps])
    assert [d.id for d in kept] == ["zh"] and "<EMAIL>" in kept[0].text
    assert rejected[0].reason == "language:en"
