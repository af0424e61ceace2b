"""Encode a corpus and pack it into fixed-length token sequences on disk (``gristmill tokenize``).

Every sequence starts with [CLS]; documents follow one another, each ended by [SEP]; a document
longer than the room left continues in the next sequence (after its own [CLS]). Nothing is padded
except the last sequence of each shard, which is filled up with [PAD]. Next to the ids each shard
stores which tokens start a word (from the tokenizer's pre-tokenization, for whole-word masking) and
which start a document (for next-sentence objectives).

The input is cut into units (``source.py``); each unit is encoded by one process and written to its
own train and val shard, atomically, followed by a done-marker, so packing runs on any number of
workers, uses memory bounded by one batch, resumes after a crash, and gives byte-identical output
whatever the number of workers. A document goes to the validation split when the xxh64 hash of its id
falls below ``val_fraction``. The manifest (format in ``manifest.py``) is written last.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import IO, Any

import numpy as np
import xxhash
from rich.console import Console
from tokenizers import Tokenizer

from gristmill import durable, options
from gristmill.data import storage
from gristmill.data.executors import make_executor
from gristmill.data.fingerprint import fingerprint
from gristmill.data.storage import atomic_write_text
from gristmill.progress import progress_bar
from gristmill.tokenizer.manifest import FORMAT, SPLITS, flag_bytes, token_dtype
from gristmill.tokenizer.source import Unit, plan_units, read_unit, resolve_input, run_stats
from gristmill.tokenizer.tokdir import (
    TokenizerError,
    load_tokenizer,
    model_max_length,
    special_ids,
    tokenizer_hash,
)

LEGACY_TOKENS = ("_work/config.json",)
"""A token folder made before output markers: resumable and replaceable like a marked one."""
SPLIT_RULE = "val when xxh64(utf-8 document id) < val_fraction * 2**64"


class SequenceWriter:
    """Turns a stream of encoded documents into fixed-length sequences in one shard (ids + flags files)."""

    def __init__(self, folder: Path, name: str, seq_len: int, dtype: str, special: dict[str, int],
                 word_table: np.ndarray | None = None):
        self.folder, self.name = folder, name
        self.word_table = word_table
        self.seq_len, self.dtype = seq_len, np.dtype(dtype)
        self.cls, self.sep, self.pad = special["cls"], special["sep"], special["pad"]
        self._files: dict[str, IO[bytes]] = {}
        self._hashes = {k: xxhash.xxh3_64() for k in ("ids", "flags")}  # checksums for the manifest
        # Tokens that did not fill a whole sequence yet; always shorter than seq_len - 1.
        self._ids = np.empty(0, dtype=np.int64)
        self._word = np.empty(0, dtype=bool)
        self._doc = np.empty(0, dtype=bool)
        self.sequences = self.text_tokens = self.documents = self.padding = 0

    def _path(self, kind: str, tmp: bool = False) -> Path:
        name = f"{self.name}.{kind}.bin"
        return self.folder / (f".{name}.tmp-{os.getpid()}" if tmp else name)

    def add(self, ids_lists: list[list[int]], word_lists: list[list[int]] | None = None) -> None:
        """Append documents: token ids of each (no special tokens, none empty) and, unless the writer has
        a word table, their word ids."""
        if not ids_lists:
            return
        lens = np.fromiter(map(len, ids_lists), dtype=np.int64, count=len(ids_lists))
        n = int(lens.sum())
        ends = np.cumsum(lens)
        starts = ends - lens
        ids = np.fromiter(chain.from_iterable(ids_lists), dtype=np.int64, count=n)
        if self.word_table is not None:
            word = self.word_table[ids]
        else:
            assert word_lists is not None, "word ids are needed without a word table"
            words = np.fromiter(chain.from_iterable(word_lists), dtype=np.int64, count=n)
            word = np.empty(n, dtype=bool)
            word[0] = True
            np.not_equal(words[1:], words[:-1], out=word[1:])
        word[starts] = True
        doc = np.zeros(n, dtype=bool)
        doc[starts] = True
        # Each document is followed by [SEP] (a word of its own, not a document start).
        self._ids = np.concatenate([self._ids, np.insert(ids, ends, self.sep)])
        self._word = np.concatenate([self._word, np.insert(word, ends, True)])
        self._doc = np.concatenate([self._doc, np.insert(doc, ends, False)])
        self.documents += len(ids_lists)
        self.text_tokens += n
        body = self.seq_len - 1
        full = len(self._ids) // body
        if full:
            cut = full * body
            self._write(self._ids[:cut].reshape(full, body), self._word[:cut].reshape(full, body),
                        self._doc[:cut].reshape(full, body))
            self._ids, self._word, self._doc = self._ids[cut:], self._word[cut:], self._doc[cut:]

    def _write(self, ids: np.ndarray, word: np.ndarray, doc: np.ndarray) -> None:
        n = ids.shape[0]
        seq = np.empty((n, self.seq_len), dtype=self.dtype)
        seq[:, 0] = self.cls
        seq[:, 1:] = ids
        word_start = np.empty((n, self.seq_len), dtype=bool)
        word_start[:, 0] = True
        word_start[:, 1:] = word
        doc_start = np.zeros((n, self.seq_len), dtype=bool)
        doc_start[:, 1:] = doc
        flags = np.stack([np.packbits(word_start, axis=1), np.packbits(doc_start, axis=1)], axis=1)
        assert flags.shape[2] == flag_bytes(self.seq_len)
        if not self._files:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._files = {k: open(self._path(k, tmp=True), "wb") for k in ("ids", "flags")}  # noqa: SIM115
        for kind, data in (("ids", seq.tobytes()), ("flags", flags.tobytes())):
            self._files[kind].write(data)
            self._hashes[kind].update(data)
        self.sequences += n

    def close(self) -> dict[str, Any] | None:
        """Pad and write the last sequence, move the files into place; None when no document came."""
        rest = len(self._ids)
        if rest:
            body = self.seq_len - 1
            ids = np.full((1, body), self.pad, dtype=np.int64)
            ids[0, :rest] = self._ids
            word = np.zeros((1, body), dtype=bool)
            word[0, :rest] = self._word
            doc = np.zeros((1, body), dtype=bool)
            doc[0, :rest] = self._doc
            self._write(ids, word, doc)
            self.padding = body - rest
        if not self._files:
            return None
        for kind, f in self._files.items():
            f.close()
            durable.replace(self._path(kind, tmp=True), self._path(kind))
        self._files = {}
        rel = self.folder.name
        return {"ids": f"{rel}/{self.name}.ids.bin", "flags": f"{rel}/{self.name}.flags.bin",
                "sequences": self.sequences, "documents": self.documents,
                "tokens": self.sequences * self.seq_len - self.padding,
                "text_tokens": self.text_tokens, "padding": self.padding,
                "ids_xxh3_64": self._hashes["ids"].hexdigest(), "flags_xxh3_64": self._hashes["flags"].hexdigest()}

    def abort(self) -> None:
        for kind, f in self._files.items():
            f.close()
            self._path(kind, tmp=True).unlink(missing_ok=True)
        self._files = {}


@dataclass
class PackTask:
    unit: Unit
    out: str
    seq_len: int
    val_fraction: float
    dtype: str
    tokenizer_hash: str
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 128
    workers: int = 1


def word_start_table(tok: Tokenizer) -> np.ndarray | None:
    """For BERT-style WordPiece, which ids start a word (all but ``##`` pieces); None for other tokenizers.

    With BertPreTokenizer every pre-token is split off punctuation, so its first piece never carries the
    continuation prefix and every later piece does: a lookup by id gives exactly the word starts that
    the encoder's word ids would, and lets it skip computing them.
    """
    data = json.loads(tok.to_str())
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    if model.get("type") != "WordPiece" or pre.get("type") != "BertPreTokenizer":
        return None
    prefix = model.get("continuing_subword_prefix") or "##"
    table = np.ones(tok.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token, i in tok.get_vocab(with_added_tokens=True).items():
        table[i] = not token.startswith(prefix)
    return table


@functools.lru_cache(maxsize=2)
def _tokenizer(tokdir: str, digest: str) -> tuple[Tokenizer, dict[str, int], np.ndarray | None]:
    tok = load_tokenizer(tokdir)
    # A corpus that contains the text "[SEP]" must not smuggle real special tokens into the shards.
    tok.encode_special_tokens = True
    return tok, special_ids(tokdir), word_start_table(tok)


def _marker(out: Path, index: int) -> Path:
    return out / "_work" / "done" / f"{index:05d}.json"


def val_mask(ids: list[str], val_fraction: float) -> np.ndarray:
    """Which documents belong to the validation split (deterministic in the id alone)."""
    threshold = int(val_fraction * 2.0**64)
    return np.fromiter((xxhash.xxh64_intdigest(i.encode("utf-8")) < threshold for i in ids), dtype=bool,
                       count=len(ids))


def pack_unit(task: PackTask) -> dict[str, Any]:
    """Encode and pack one input unit; safe to run again (outputs are replaced, the marker comes last)."""
    out = Path(task.out)
    marker = _marker(out, task.unit.index)
    if marker.exists():
        return json.loads(marker.read_text())
    if task.workers > 1:
        # One Rust thread per process: the processes already use every core.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok, special, table = _tokenizer(str(out / "tokenizer"), task.tokenizer_hash)
    # Without the need for word ids the encoder can skip offsets (encode_batch_fast, tokenizers >= 0.20).
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch) if table is not None else tok.encode_batch
    name = f"{task.unit.index:05d}"
    writers = {s: SequenceWriter(out / s, name, task.seq_len, task.dtype, special, table) for s in SPLITS}
    docs = empty = 0
    try:
        for ids, texts in read_unit(task.unit, task.text_field, task.id_field, task.batch_size):
            docs += len(ids)
            keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
            encodings = encode([texts[i] for i in keep], add_special_tokens=False)
            to_val = val_mask([ids[i] for i in keep], task.val_fraction)
            parts: dict[str, tuple[list[list[int]], list[list[int]]]] = {s: ([], []) for s in SPLITS}
            for enc, is_val in zip(encodings, to_val):
                token_ids = enc.ids
                if token_ids:
                    part = parts["val" if is_val else "train"]
                    part[0].append(token_ids)
                    if table is None:
                        part[1].append(enc.word_ids)
            empty += len(texts) - sum(len(p[0]) for p in parts.values())
            for split, (id_lists, word_lists) in parts.items():
                writers[split].add(id_lists, word_lists if table is None else None)
        shards = {s: w.close() for s, w in writers.items()}
        for shard in shards.values():
            if shard is not None:
                shard["tokenizer_hash"] = task.tokenizer_hash
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    result = {"index": task.unit.index, "path": task.unit.path, "start": task.unit.start, "stop": task.unit.stop,
              "documents": docs, "empty_documents": empty, "tokenizer_hash": task.tokenizer_hash, "shards": shards}
    atomic_write_text(marker, json.dumps(result))
    return result


def _prepare_output(out: Path, tokdir: Path, config: dict[str, Any], resume: bool, overwrite: bool) -> None:
    config_file = out / "_work" / "config.json"
    if storage.has_content(out):
        if overwrite:
            storage.remove_output(out, "tokens", legacy=LEGACY_TOKENS)
        elif not resume:
            raise TokenizerError(f"{out} already exists and is not empty: pass --resume to continue it "
                                 "or --overwrite to replace it")
        else:
            if not config_file.is_file():
                raise TokenizerError(f"{out} is not a gristmill token folder; cannot resume into it")
            old = json.loads(config_file.read_text())
            if old.get("tokenizer_hash") != config["tokenizer_hash"]:
                raise TokenizerError(f"{out} holds shards made with another tokenizer "
                                     f"(hash {str(old.get('tokenizer_hash'))[:12]}, this one {config['tokenizer_hash'][:12]}); "
                                     "refusing to mix them: use a new --out or --overwrite")
            _check_same_files(old.get("files") or [], config["files"])
            changed = sorted(k for k in config if k != "files" and old.get(k) != config[k])
            if changed:
                raise TokenizerError(f"{out} was packed with other settings ({', '.join(changed)}); "
                                     "resume needs the same ones (or use --overwrite)")
            for folder in [out, out / "_work", out / "_work" / "done"] + [out / s for s in SPLITS]:
                storage.remove_stale_temporaries(folder)
    if not (resume and storage.read_marker(out)):
        storage.mark_output(out, "tokens")
    atomic_write_text(config_file, json.dumps(config, indent=2))
    copy = out / "tokenizer"
    if copy.exists() and tokenizer_hash(copy) != config["tokenizer_hash"]:
        raise TokenizerError(f"{copy} is another tokenizer than {tokdir}; refusing to mix shards")
    if not copy.exists():
        tmp = out / f".tokenizer.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(tokdir, tmp, ignore=shutil.ignore_patterns(".*"))
        durable.replace(tmp, copy)


def _check_same_files(old: list[list[Any]], new: list[list[Any]]) -> None:
    """Name the input that changed since the interrupted pack started (a resume must read the same input)."""
    advice = "a resume must read the same input: restore it, or start again with --overwrite"
    before = {f[0]: f[1:] for f in old}
    now = {f[0]: f[1:] for f in new}
    for path in sorted(set(before) | set(now)):
        if path not in now:
            raise TokenizerError(f"input {path} is no longer part of the input; {advice}")
        if path not in before:
            raise TokenizerError(f"input {path} is new since the pack started; {advice}")
        if before[path] != now[path][:len(before[path])]:  # a legacy folder recorded sizes only
            raise TokenizerError(f"input {path} changed since the pack started; {advice}")


def _merge(results: list[dict[str, Any]], digest: str) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in SPLITS:
        shards = []
        for res in results:
            if res["tokenizer_hash"] != digest:
                raise TokenizerError(f"unit {res['index']} was packed with another tokenizer; refusing to mix shards")
            if res["shards"][split]:
                shards.append(res["shards"][split])
        splits[split] = {key: sum(s[key] for s in shards)
                         for key in ("sequences", "documents", "tokens", "text_tokens", "padding")}
        splits[split]["shards"] = shards
    return splits


def pack_corpus(input: str | Path | list[str | Path], tokdir: str | Path, out: str | Path, seq_len: int = 128,
                val_fraction: float = 0.01, workers: int = 1, resume: bool = False, overwrite: bool = False,
                docs_per_unit: int = 2000, text_field: str = "text", id_field: str = "id",
                progress: bool = False, console: Console | None = None,
                allow_incomplete: bool = False) -> dict[str, Any]:
    """Encode ``input`` with the tokenizer in ``tokdir`` and pack it into ``out``; returns the manifest.

    ``input`` must not be an unfinished gristmill output unless ``allow_incomplete``; ``out`` must not be or
    contain an input, and one process at a time packs into it.
    """
    for message in (options.problem("--seq-len", seq_len, options.POSITIONS),
                    options.problem("--val-fraction", val_fraction, options.FRACTION)):
        if message:
            raise TokenizerError(message)
    t0 = time.perf_counter()
    out, tokdir = Path(out), Path(tokdir)
    longest = model_max_length(tokdir)
    if longest is not None and seq_len > longest:
        raise TokenizerError(f"--seq-len {seq_len} is longer than the tokenizer's model_max_length {longest} "
                             f"({tokdir / 'tokenizer_config.json'}); pack at most {longest} tokens per sequence, "
                             "or raise model_max_length there (at most the positions of the model to train)")
    digest = tokenizer_hash(tokdir)
    tok = load_tokenizer(tokdir)
    special = special_ids(tokdir)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    items = [input] if isinstance(input, (str, Path)) else list(input)
    storage.check_not_input(out, [*items, tokdir])
    for item in items:
        storage.require_complete(item, allow_incomplete)
    files, stats_file = resolve_input(input)
    units = plan_units(files, docs_per_unit)
    config = {"tokenizer_hash": digest, "seq_len": seq_len, "val_fraction": val_fraction, "dtype": dtype,
              "docs_per_unit": docs_per_unit, "text_field": text_field, "id_field": id_field,
              "files": [[storage.absolute(f), *fingerprint(f)] for f in files]}
    with storage.output_lock(out):
        _prepare_output(out, tokdir, config, resume, overwrite)
        return _pack(out, tokdir, units, files, stats_file, config, (vocab_size, special), input, workers, progress,
                     console, t0)


def _pack(out: Path, tokdir: Path, units: list[Unit], files: list[str], stats_file: str | None, config: dict[str, Any],
          vocab: tuple[int, dict[str, int]], input: str | Path | list[str | Path], workers: int, progress: bool,
          console: Console | None, t0: float) -> dict[str, Any]:
    """Encode every unit (skipping finished ones) and write the manifest; the caller holds the lock."""
    seq_len, val_fraction, dtype, digest = config["seq_len"], config["val_fraction"], config["dtype"], config["tokenizer_hash"]
    text_field, id_field, docs_per_unit = config["text_field"], config["id_field"], config["docs_per_unit"]
    vocab_size, special = vocab
    tasks = [PackTask(u, str(out), seq_len, val_fraction, dtype, digest, text_field, id_field, workers=workers)
             for u in units]
    results: list[dict[str, Any]] = []
    executor = make_executor("local", workers)
    console = console or Console(stderr=True)
    try:
        with progress_bar(progress, console) as bar:
            task_id = bar.add_task("tokenize", total=sum(u.documents for u in units), rate="")
            tokens = 0
            for res in executor.map(pack_unit, tasks):
                results.append(res)
                tokens += sum(s["tokens"] for s in res["shards"].values() if s)
                rate = tokens / max(1e-9, time.perf_counter() - t0)
                bar.update(task_id, advance=res["documents"], rate=f"{rate:,.0f} tokens/s")
    finally:
        executor.close()
    results.sort(key=lambda r: r["index"])
    splits = _merge(results, digest)
    seconds = time.perf_counter() - t0
    manifest = {
        "format": FORMAT,
        "tokenizer": {"hash": digest, "vocab_size": vocab_size, "special": special, "dir": "tokenizer",
                      "source": str(tokdir.resolve())},
        "seq_len": seq_len,
        "dtype": dtype,
        "sequence_layout": "[CLS] then documents each ended by [SEP]; a long document continues after the next [CLS]",
        "last_sequence": "the last sequence of each shard is padded with [PAD]",
        "val_fraction": val_fraction,
        "split_rule": SPLIT_RULE,
        "splits": splits,
        "source": {
            "input": [str(p) for p in ([input] if isinstance(input, (str, Path)) else input)],
            "files": [storage.absolute(f) for f in files],
            "documents": sum(r["documents"] for r in results),
            "empty_documents": sum(r["empty_documents"] for r in results),
            "run_stats": run_stats(stats_file),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "workers": workers,
        "settings": {"docs_per_unit": docs_per_unit, "text_field": text_field, "id_field": id_field},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    storage.mark_complete(out, "tokens")
    return manifest
