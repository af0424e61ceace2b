"""Packing: sequence layout, split, flags, empty and long documents, inputs, workers and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from typer.testing import CliRunner

from gristmill.cli import app
from gristmill.data.document import Document
from gristmill.data.writers import write_documents
from gristmill.tokenizer import TokenDataset, load_tokenizer, pack_corpus, tokenizer_hash
from gristmill.tokenizer.pack import val_mask
from gristmill.tokenizer.tokdir import save_tokdir
from tests.tokenizer.conftest import CHINESE, sample_texts, write_jsonl

CLS, SEP, PAD = 2, 3, 0


def expected_documents(records: list[dict], tokdir: Path) -> list[tuple[str, list[int], list[bool]]]:
    """(id, token ids, word starts) of every document with tokens, in input order."""
    tok = load_tokenizer(tokdir)
    tok.encode_special_tokens = True
    out = []
    for r in records:
        text = r.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        enc = tok.encode(text, add_special_tokens=False)
        if not enc.ids:
            continue
        words = enc.word_ids
        out.append((r["id"], enc.ids, [i == 0 or words[i] != words[i - 1] for i in range(len(words))]))
    return out


def unpack(ds: TokenDataset) -> list[tuple[list[int], list[bool], list[bool]]]:
    """The documents of each shard of ``ds``, rebuilt from its sequences, checking the layout on the way."""
    docs = []
    start = 0
    for shard in ds.manifest["splits"][ds.split]["shards"]:
        batch = ds.get_batch(np.arange(start, start + shard["sequences"]))
        start += shard["sequences"]
        ids, word, doc = batch["input_ids"], batch["word_start"], batch["doc_start"]
        assert (ids[:, 0] == CLS).all() and word[:, 0].all() and not doc[:, 0].any()
        assert not (ids[:-1] == PAD).any(), "only the last sequence of a shard is padded"
        assert shard["padding"] == int((ids[-1] == PAD).sum())
        assert not word[ids == PAD].any() and not doc[ids == PAD].any()
        flat_ids, flat_word, flat_doc = ids[:, 1:].ravel(), word[:, 1:].ravel(), doc[:, 1:].ravel()
        real = flat_ids != PAD
        flat_ids, flat_word, flat_doc = flat_ids[real], flat_word[real], flat_doc[real]
        assert flat_ids[-1] == SEP, "every document ends with [SEP]"
        ends = np.flatnonzero(flat_ids == SEP)
        assert flat_word[ends].all() and not flat_doc[ends].any()
        begin = 0
        for end in ends:
            docs.append((flat_ids[begin:end].tolist(), flat_word[begin:end].tolist(), flat_doc[begin:end].tolist()))
            begin = end + 1
        assert shard["documents"] == len(ends)
    return docs


def check_split(out: Path, split: str, expected: list[tuple[str, list[int], list[bool]]]) -> None:
    ds = TokenDataset(out, split)
    got = unpack(ds)
    assert len(got) == len(expected)
    for (_, ids, words), (g_ids, g_words, g_doc) in zip(expected, got):
        assert g_ids == ids
        assert g_words == words
        assert g_doc == [True] + [False] * (len(ids) - 1)


def test_every_document_lands_once_in_the_right_split_and_layout(corpus: Path, tokdir: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    out = tmp_path / "tokens"
    m = pack_corpus(corpus, tokdir, out, seq_len=64, val_fraction=0.2, docs_per_unit=150)
    expected = expected_documents(records, tokdir)
    is_val = val_mask([d[0] for d in expected], 0.2)
    check_split(out, "train", [d for d, v in zip(expected, is_val) if not v])
    check_split(out, "val", [d for d, v in zip(expected, is_val) if v])
    assert 0 < is_val.sum() < len(expected)
    assert m["source"]["documents"] == len(records)
    assert m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"] == len(expected)
    text_tokens = sum(len(d[1]) for d in expected)
    assert sum(s["text_tokens"] for s in m["splits"].values()) == text_tokens
    assert m["tokenizer"]["hash"] == tokenizer_hash(tokdir) == tokenizer_hash(out / "tokenizer")
    assert m["dtype"] == "uint16" and m["seq_len"] == 64
    assert len(m["splits"]["train"]["shards"]) == 3, "one shard per unit of 150 documents"
    assert (out / "train" / "00000.ids.bin").stat().st_size == m["splits"]["train"]["shards"][0]["sequences"] * 64 * 2
    from gristmill.tokenizer.pack import word_start_table

    assert word_start_table(load_tokenizer(tokdir)) is not None, "the WordPiece fast path was checked above"
    ds = TokenDataset(out)
    assert (ds.seq_len, ds.vocab_size, ds.special["mask"]) == (64, 1500, 4)
    assert (ds.tokenizer_dir / "tokenizer.json").is_file()


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_other_kinds_take_word_starts_from_the_encoder(corpus: Path, tmp_path: Path, kind: str) -> None:
    from gristmill.tokenizer import train_tokenizer
    from gristmill.tokenizer.pack import word_start_table

    tokdir = train_tokenizer(corpus, tmp_path / kind, kind=kind, vocab_size=600, max_documents=40, show_progress=False)
    assert word_start_table(load_tokenizer(tokdir)) is None
    records = [json.loads(line) for line in corpus.read_text().splitlines()][:80]
    small = write_jsonl(tmp_path / "small.jsonl", records)
    pack_corpus(small, tokdir, tmp_path / "t", seq_len=40, val_fraction=0.0)
    expected = expected_documents(records, tokdir)
    assert any(not w for _, _, words in expected for w in words), "some words have several pieces"
    check_split(tmp_path / "t", "train", expected)


def test_split_depends_on_the_document_id_only(tokdir: Path, tmp_path: Path) -> None:
    records = [{"id": f"doc-{i}", "text": f"document number {i}"} for i in range(300)]
    m = pack_corpus(write_jsonl(tmp_path / "a.jsonl", records), tokdir, tmp_path / "a", seq_len=16, val_fraction=0.1)
    # The same documents in another order and another file split the same way.
    shuffled = write_jsonl(tmp_path / "b.jsonl.gz", records[::-1])
    m2 = pack_corpus(shuffled, tokdir, tmp_path / "b", seq_len=16, val_fraction=0.1, docs_per_unit=70)
    assert m["splits"]["val"]["documents"] == m2["splits"]["val"]["documents"] == int(val_mask([r["id"] for r in records], 0.1).sum())
    assert 15 <= m["splits"]["val"]["documents"] <= 45
    none = pack_corpus(tmp_path / "a.jsonl", tokdir, tmp_path / "c", seq_len=16, val_fraction=0.0)
    assert none["splits"]["val"]["sequences"] == 0 and len(TokenDataset(tmp_path / "c", "val")) == 0


def test_empty_documents_are_skipped_and_counted(tokdir: Path, tmp_path: Path) -> None:
    records = [{"id": "a", "text": "first document here"}, {"id": "b", "text": ""}, {"id": "c", "text": "   \n "},
               {"id": "d"}, {"id": "e", "text": "\x00\x01"}, {"id": "f", "text": "last one"}]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    m = pack_corpus(corpus, tokdir, tmp_path / "t", seq_len=16, val_fraction=0.0)
    assert m["source"] == {**m["source"], "documents": 6, "empty_documents": 4}
    assert m["splits"]["train"]["documents"] == 2
    check_split(tmp_path / "t", "train", expected_documents(records, tokdir))
    ds = TokenDataset(tmp_path / "t")
    assert len(ds) == 1 and ds[0]["input_ids"].tolist().count(SEP) == 2


def test_a_document_longer_than_many_sequences_continues_after_each_cls(tokdir: Path, tmp_path: Path) -> None:
    long_text = " ".join(sample_texts(60))
    records = [{"id": "short", "text": "a short one"}, {"id": "long", "text": long_text}, {"id": "tail", "text": "the end"}]
    corpus = write_jsonl(tmp_path / "long.jsonl.gz", records)
    out = tmp_path / "t"
    pack_corpus(corpus, tokdir, out, seq_len=32, val_fraction=0.0)
    expected = expected_documents(records, tokdir)
    assert len(expected[1][1]) > 20 * 31, "the long document fills many sequences"
    check_split(out, "train", expected)
    ds = TokenDataset(out)
    starts = ds.get_batch(np.arange(len(ds)))["doc_start"].sum(axis=1)
    assert starts.sum() == 3 and (starts[2:-1] == 0).all(), "continuation sequences start no document"


def test_literal_special_token_text_cannot_inject_specials(tokdir: Path, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "text": "before [SEP] after [MASK] [PAD]"}])
    pack_corpus(corpus, tokdir, tmp_path / "t", seq_len=32, val_fraction=0.0)
    ids = TokenDataset(tmp_path / "t")[0]["input_ids"].tolist()
    assert ids.count(SEP) == 1 and 4 not in ids and ids.index(PAD) > 10


def test_gristmill_output_folder_with_stats(tokdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    texts = sample_texts(120) + CHINESE
    docs = [Document(f"doc{i}", t, {"url": f"https://x.example/{i}"}) for i, t in enumerate(texts)]
    write_documents(docs[:70], out / "kept" / "part-00000.parquet")
    write_documents(docs[70:], out / "kept" / "part-00001.parquet")
    (out / "stats.json").write_text(json.dumps({"input": {"paths": ["raw.jsonl"]},
                                                "totals": {"docs_in": 200, "kept": len(docs), "rejected": 76}}))
    m = pack_corpus(out / "kept", tokdir, tmp_path / "t", seq_len=48, val_fraction=0.0, docs_per_unit=30)
    assert m["source"]["run_stats"]["totals"] == {"docs_in": 200, "kept": len(docs), "rejected": 76}
    assert len(m["splits"]["train"]["shards"]) == 5, "units never cross files: 30+30+10 and 30+24"
    check_split(tmp_path / "t", "train", expected_documents([{"id": d.id, "text": d.text} for d in docs], tokdir))
    # The whole OUT folder works too, and so does a Parquet file without an id column.
    assert pack_corpus(out, tokdir, tmp_path / "t2", seq_len=48, val_fraction=0.0)["splits"]["train"]["documents"] == len(docs)
    pq.write_table(pa.table({"text": texts}), tmp_path / "noid.parquet")
    m = pack_corpus(tmp_path / "noid.parquet", tokdir, tmp_path / "t3", seq_len=48, val_fraction=0.5)
    assert 0 < m["splits"]["val"]["documents"] < len(texts)


def test_a_run_output_on_an_fsspec_filesystem(tokdir: Path, tmp_path: Path) -> None:
    """OUT of a run written to a URL (here fsspec's in-memory filesystem) trains a tokenizer and packs like a folder."""
    import uuid

    import fsspec

    from gristmill.data import storage
    from gristmill.tokenizer import train_tokenizer

    root = f"memory://tok-test-{uuid.uuid4().hex}"
    docs = [Document(f"doc{i}", t) for i, t in enumerate(sample_texts(90) + CHINESE)]
    try:
        write_documents(docs[:50], storage.join(root, "OUT", "kept", "part-00000.parquet"))
        write_documents(docs[50:], storage.join(root, "OUT", "kept", "part-00001.jsonl"), "jsonl")
        storage.atomic_write(storage.join(root, "OUT", "stats.json"),
                             lambda f: f.write(json.dumps({"totals": {"kept": len(docs)}}).encode()))
        write_documents(docs[:50], tmp_path / "local" / "kept" / "part-00000.parquet")
        write_documents(docs[50:], tmp_path / "local" / "kept" / "part-00001.jsonl", "jsonl")

        # memory:// lives in this process, so one worker; file:// URLs below take the same path in worker processes
        remote = pack_corpus(storage.join(root, "OUT"), tokdir, tmp_path / "t", seq_len=48, val_fraction=0.0,
                             docs_per_unit=20)
        local = pack_corpus(tmp_path / "local" / "kept", tokdir, tmp_path / "t2", seq_len=48, val_fraction=0.0,
                            docs_per_unit=20)
        assert remote["source"]["run_stats"]["totals"] == {"kept": len(docs)}
        assert remote["source"]["files"][0].startswith("memory://")
        assert remote["splits"] == local["splits"]
        file_url = pack_corpus(f"file://{tmp_path / 'local' / 'kept'}", tokdir, tmp_path / "t3", seq_len=48,
                               val_fraction=0.0, docs_per_unit=20, workers=2)
        assert file_url["splits"] == local["splits"]
        check_split(tmp_path / "t", "train", expected_documents([{"id": d.id, "text": d.text} for d in docs], tokdir))

        # (The trainer's vocabulary itself is not reproducible run to run: equal counts tie at the cut-off.)
        url_tok = train_tokenizer(storage.join(root, "OUT"), tmp_path / "tok-url", vocab_size=600, show_progress=False)
        record = json.loads((url_tok / "gristmill.json").read_text())
        assert record["documents"] == len(docs) and record["input"][1].endswith("part-00001.jsonl")
        assert load_tokenizer(url_tok).encode("北京").tokens
    finally:
        fs = fsspec.filesystem("memory")
        fs.rm(fs._strip_protocol(root), recursive=True)


def test_plain_jsonl_units_seek_to_their_first_record(corpus: Path) -> None:
    from gristmill.tokenizer.source import plan_units, read_unit

    units = plan_units([corpus], docs_per_unit=37)
    assert units[0].byte_offset == 0 and all(u.byte_offset and u.byte_offset > 0 for u in units[1:])
    lines = corpus.read_bytes().splitlines()
    for unit in units:
        ids = [i for batch_ids, _ in read_unit(unit) for i in batch_ids]
        assert ids == [json.loads(line)["id"] for line in lines[unit.start:unit.stop]]


def test_two_workers_write_the_same_bytes_as_one(corpus: Path, tokdir: Path, tmp_path: Path) -> None:
    one = pack_corpus(corpus, tokdir, tmp_path / "one", seq_len=64, docs_per_unit=100, workers=1)
    two = pack_corpus(corpus, tokdir, tmp_path / "two", seq_len=64, docs_per_unit=100, workers=2)
    assert one["splits"] == two["splits"]
    for split in ("train", "val"):
        for shard in one["splits"][split]["shards"]:
            for key in ("ids", "flags"):
                assert (tmp_path / "one" / shard[key]).read_bytes() == (tmp_path / "two" / shard[key]).read_bytes()


def test_large_vocabulary_uses_uint32(tmp_path: Path) -> None:
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    vocab.update({f"w{i}": i + 5 for i in range(70000)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokdir = save_tokdir(tok, tmp_path / "big", lowercase=False, model_max_length=512)
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "w1 w65535 w69999 w70000"}])
    m = pack_corpus(corpus, tokdir, tmp_path / "t", seq_len=8, val_fraction=0.0)
    assert m["dtype"] == "uint32"
    assert TokenDataset(tmp_path / "t")[0]["input_ids"].tolist() == [CLS, 6, 65540, 70004, 1, SEP, PAD, PAD]


def test_cli_tokenize_and_show(corpus: Path, tokdir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tokens"
    args = ["tokenize", "--input", str(corpus), "--tokenizer", str(tokdir), "--out", str(out), "--seq-len", "64",
            "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "tokens/s" in res.output and len(TokenDataset(out)) > 0
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "already exists" in " ".join(res.output.split())
    res = runner.invoke(app, ["tokenizer", "show", str(out), "-n", "0"])
    assert res.exit_code == 0 and "[CLS]" in res.output and "train[0]" in res.output
    res = runner.invoke(app, ["tokenize", "--input", str(corpus), "--tokenizer", str(tmp_path), "--out",
                              str(tmp_path / "x"), "--no-progress"])
    assert res.exit_code == 2 and "not a tokenizer folder" in " ".join(res.output.split())


@pytest.mark.parametrize("seq_len", [0, 4])
def test_bad_settings_are_messages(corpus: Path, tokdir: Path, tmp_path: Path, seq_len: int) -> None:
    from gristmill.tokenizer import TokenizerError

    with pytest.raises(TokenizerError, match="seq.len"):
        pack_corpus(corpus, tokdir, tmp_path / "t", seq_len=seq_len)
