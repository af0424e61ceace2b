"""recipes/web-zh.yaml on mixed Chinese/English pages, and its dedup and decontamination steps on a real run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gristmill.data.document import Document
from gristmill.data.pipeline import CorpusStep, StepStats, run_steps
from gristmill.data.readers.output import read_documents
from gristmill.data.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "recipes" / "web-zh.yaml"
ZH = ROOT / "sample" / "zh"

PROSE = (
    "软件包管理是 Debian 系统最重要的特性之一。系统中的每一个程序都以软件包的形式安装，"
    "软件包之间的依赖关系由包管理工具自动处理，因此用户很少需要手动下载和编译程序。"
    "在日常的系统管理中，我们通常使用命令行工具来安装、升级和删除软件包，这些工具会从配置好的软件源中"
    "获取软件包的列表，并且在安装之前检查它们的签名，以保证系统的安全。\n\n"
    "如果你想了解一个软件包的详细信息，可以查看它的说明和依赖关系。升级整个系统之前，最好先阅读发行说明，"
    "因为有些软件包的配置文件格式可能已经改变。遇到问题时，可以在邮件列表或者论坛上寻求帮助，"
    "也可以查阅相关的手册页和在线文档，那里通常有详细的说明和例子。"
)


def _per_document_steps():
    return [s for s in load_recipe(RECIPE).steps if not isinstance(s, CorpusStep)]


def _run(docs: list[Document]) -> tuple[dict[str, Document], dict[str, Document]]:
    steps = _per_document_steps()
    kept, rejected = run_steps(docs, steps, [StepStats() for _ in steps])
    return {d.id: d for d in kept}, {d.id: d for d in rejected}


def test_chinese_page_quoting_english_commands_is_kept():
    page = (PROSE + "\n\n要更新软件包列表并升级系统，请以 root 身份运行下面的命令：\n\n"
            "    apt-get update\n    apt-get upgrade\n    apt-cache policy coreutils\n\n"
            "The command apt-get upgrade never removes installed packages; use apt-get dist-upgrade when it must.\n\n"
            "更多的选项请参考 apt-get(8) 手册页。")
    kept, rejected = _run([Document("mixed", page)])
    assert "mixed" in kept, rejected.get("mixed")
    assert kept["mixed"].meta["lang"] == "zh"
    assert "apt-get update" in kept["mixed"].text


def test_english_page_with_a_chinese_sentence_is_rejected():
    english = ("The package manager installs, upgrades and removes software packages and resolves the dependencies "
               "between them, so users rarely need to build programs by hand. Before upgrading the whole system, "
               "read the release notes, because the format of some configuration files may have changed.\n\n") * 3
    kept, rejected = _run([Document("en", english + "软件包管理是 Debian 系统最重要的特性之一。")])
    assert not kept and rejected["en"].reason.startswith("language:")


def test_half_english_half_chinese_page_is_rejected_as_foreign():
    english = ("The package manager installs, upgrades and removes software packages and resolves the dependencies "
               "between them, so users rarely need to build programs by hand. Before upgrading the whole system, "
               "read the release notes, because the format of some configuration files may have changed.")
    page = PROSE + "\n\n" + "\n\n".join([english] * 4)
    kept, rejected = _run([Document("half", page)])
    assert not kept and rejected["half"].reason.startswith("language:"), rejected["half"].reason


def test_site_furniture_goes_and_pii_next_to_han_characters_is_redacted():
    page = ("跳到主要内容\n首页 | 新闻 | 教程 | 下载 | 关于我们\n\n" + PROSE
            + "\n\n如有问题请联系张先生，电话13812345678，邮箱zhang.wei@example.com，服务器地址为10.1.2.3。"
            + "\n\n版权所有 © 2024 示例网 保留所有权利 京ICP备12345678号")
    kept, rejected = _run([Document("site", page)])
    assert "site" in kept, rejected.get("site")
    text = kept["site"].text
    for gone in ("跳到主要内容", "首页 | 新闻", "版权所有", "13812345678", "zhang.wei@example.com", "10.1.2.3"):
        assert gone not in text, gone
    assert "<PHONE>" in text and "<EMAIL>" in text and "<IP_ADDRESS>" in text
    assert "电话<PHONE>" in text  # the Han characters around it stay


def _clean_sample_docs(n: int) -> list[dict]:
    with gzip.open(ZH / "corpus.jsonl.gz", "rt", encoding="utf-8") as f, \
            gzip.open(ZH / "corpus.labels.jsonl.gz", "rt", encoding="utf-8") as g:
        pairs = [(json.loads(a), json.loads(b)) for a, b in zip(f, g)]
    docs = [d for d, lab in pairs if not lab["defects"] and d["source"] == "debref" and len(d["text"]) > 1500]
    return docs[:n]


def test_dedup_and_decontamination_on_a_real_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipe names the task files relative to the repository root
    a, b, c = _clean_sample_docs(3)
    chars = list(a["text"])
    for i in range(50, len(chars), 60):  # about 1.7% of the characters changed: a near-duplicate
        chars[i] = "的"
    task_text = json.loads((ZH / "task" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    paras = c["text"].split("\n\n")
    contaminated = "\n\n".join(paras[:2] + [task_text] + paras[2:])
    rows = [a, {**a, "id": "copy"}, {**a, "id": "near", "text": "转载自网络\n" + "".join(chars)}, b,
            {**c, "id": "contaminated", "text": contaminated}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    pipeline = load_recipe(RECIPE, output_override=str(tmp_path / "out"), input_override=[str(src)])
    result = pipeline.run(workers=1, progress=False)
    kept = {d.id for d in read_documents(tmp_path / "out" / "kept")}
    rejected = {d.id: d.reason for d in read_documents(tmp_path / "out" / "rejected")}
    assert result.docs_in == 5 == len(kept) + len(rejected)
    assert {a["id"], b["id"]} <= kept, rejected
    assert rejected["copy"].startswith("exact_dedup:")
    assert rejected["near"].startswith("minhash_dedup:")
    assert rejected["contaminated"].startswith("decontaminate:")


@pytest.mark.parametrize("name", ["exact_dedup", "minhash_dedup", "decontaminate"])
def test_recipe_enables_the_corpus_steps(name):
    steps = {s.name: s for s in load_recipe(RECIPE).steps}
    assert name in steps
    if name == "decontaminate":
        assert all((ROOT / p).is_file() for p in steps[name].paths)
    assert "another team" not in RECIPE.read_text(encoding="utf-8")
