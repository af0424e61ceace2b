"""Command-line verbs of gristmill.tokenizer (registered on the main app by gristmill.cli).

``gristmill tokenizer train`` trains a tokenizer folder, ``gristmill tokenizer show`` decodes packed
sequences back to text for inspection, and ``gristmill tokenize`` packs a corpus into token shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console

from gristmill.console import fail
from gristmill.data.storage import OutputError
from gristmill.errors import describe_os_error
from gristmill.options import COUNT, FRACTION, POSITIONS, PROGRESS_HELP, at_least, ranged

console = Console(stderr=True, soft_wrap=True)
tokenizer_app = typer.Typer(no_args_is_help=True, help="Train a tokenizer (Hugging Face format) and inspect token shards.")


ALLOW_INCOMPLETE = "Read an unfinished gristmill output (a killed run) as it is."


def _output_error(exc: OSError) -> OutputError:
    """Disk full, read-only or no permission: a user error; any other OSError is a bug and keeps its traceback."""
    if (message := describe_os_error(exc, resumable=True)) is None:
        raise exc
    return OutputError(message)


@tokenizer_app.command("train")
def train(
    input: list[str] = typer.Option(..., "--input", "-i", help="OUT/kept of a gristmill run, Parquet or JSONL(.gz) files or folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Tokenizer folder to write (Hugging Face format)."),
    kind: Literal["wordpiece", "bpe", "unigram"] = typer.Option("wordpiece", "--kind", help="wordpiece (BERT), bpe (byte-level) or unigram."),
    vocab_size: int = typer.Option(32000, "--vocab-size", callback=ranged(at_least(16)), help="Tokens in the vocabulary, special tokens included."),
    lowercase: bool | None = typer.Option(None, "--lowercase/--no-lowercase", help="Default: lowercase for wordpiece only."),
    normalization: Literal["nfc", "nfd", "nfkc", "nfkd", "none", "auto"] = typer.Option("auto", "--normalization", help="Unicode form: nfc, nfd, nfkc, nfkd, none or auto (nfkc for unigram, none otherwise)."),
    strip_accents: bool | None = typer.Option(None, "--strip-accents/--keep-accents", help="Default: wordpiece strips accents when it lowercases."),
    cjk: bool = typer.Option(True, "--cjk/--no-cjk", help="Each CJK character its own pre-token (as BERT)."),
    alphabet: Literal["cjk"] | None = typer.Option(None, "--alphabet", help="cjk: every common Han character (GB 2312 + Big5 frequent, 8,883) gets a token, so unseen Chinese text does not become [UNK] (wordpiece, unigram; needs --vocab-size >= 10000)."),
    min_frequency: int = typer.Option(2, "--min-frequency", callback=ranged(at_least(0)), help="Pairs seen fewer times are not merged into a token."),
    limit_alphabet: int = typer.Option(1000, "--limit-alphabet", callback=ranged(COUNT), help="Most frequent characters kept as the initial alphabet (wordpiece, bpe); raise it for CJK-heavy corpora."),
    max_docs: int | None = typer.Option(None, "--max-docs", callback=ranged(COUNT), help="Train on the first N documents only."),
    model_max_length: int = typer.Option(512, "--model-max-length", callback=ranged(POSITIONS), help="Written to tokenizer_config.json."),
    text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing tokenizer folder."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help=ALLOW_INCOMPLETE),
) -> None:
    """Train a tokenizer on a corpus (streamed) and write it as a Hugging Face tokenizer folder."""
    from gristmill.tokenizer import load_tokenizer, train_tokenizer

    try:
        path = train_tokenizer(input, out, kind=kind, vocab_size=vocab_size, lowercase=lowercase,
                               normalization=normalization, strip_accents=strip_accents, cjk=cjk,
                               min_frequency=min_frequency, limit_alphabet=limit_alphabet, max_documents=max_docs,
                               model_max_length=model_max_length, text_field=text_field, show_progress=progress,
                               overwrite=overwrite, allow_incomplete=allow_incomplete, alphabet=alphabet)
    except OSError as exc:
        raise _output_error(exc) from None
    record = json.loads((path / "gristmill.json").read_text())
    console.print(f"{kind} tokenizer with {load_tokenizer(path).get_vocab_size():,} tokens trained on "
                  f"{record['documents']:,} documents in {record['seconds']:.1f} s -> {path}", markup=False)


@tokenizer_app.command("show")
def show(
    tokens: Path = typer.Argument(..., help="A TOKENS folder made by `gristmill tokenize`."),
    split: str = typer.Option("train", "--split", help="Split to read: train or val."),
    index: list[int] = typer.Option([0], "--index", "-n", help="Sequence(s) to decode."),
) -> None:
    """Print the manifest summary and decode sequences back to text (word and document starts marked)."""
    from gristmill.tokenizer import TokenDataset, load_tokenizer

    ds = TokenDataset(tokens, split)
    tok = load_tokenizer(ds.tokenizer_dir)
    m = ds.manifest
    out = Console()
    for name, info in m["splits"].items():
        out.print(f"{name}: {info['sequences']:,} sequences, {info['tokens']:,} tokens, {info['documents']:,} "
                  f"documents, {len(info['shards'])} shards")
    out.print(f"seq_len {m['seq_len']}, dtype {m['dtype']}, vocabulary {m['tokenizer']['vocab_size']:,}, "
              f"tokenizer {m['tokenizer']['hash'][:12]}")
    for i in index:
        if not -len(ds) <= i < len(ds):
            raise fail(f"{split} has {len(ds)} sequences; there is no sequence {i}")
        item = ds[i]
        pieces = []
        for tid, doc in zip(item["input_ids"].tolist(), item["doc_start"].tolist()):
            pieces.append(("¶ " if doc else "") + (tok.id_to_token(tid) or "?"))
        out.print(f"[bold]{split}[{i}][/] " + " ".join(pieces), markup=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app. Import heavy modules inside each command."""
    app.add_typer(tokenizer_app, name="tokenizer")

    @app.command("tokenize")
    def tokenize(
        input: list[str] = typer.Option(..., "--input", "-i", help="OUT/kept of a gristmill run, Parquet or JSONL(.gz) files or folders."),
        tokenizer: Path = typer.Option(..., "--tokenizer", "-t", help="Tokenizer folder (from `gristmill tokenizer train`)."),
        out: Path = typer.Option(..., "--out", "-o", help="TOKENS folder to write."),
        seq_len: int = typer.Option(128, "--seq-len", callback=ranged(POSITIONS), help="Tokens per sequence, at most the tokenizer's model_max_length."),
        val_fraction: float = typer.Option(0.01, "--val-fraction", callback=ranged(FRACTION), help="Share of documents (by id hash) in the val split."),
        workers: int = typer.Option(1, "--workers", "-w", callback=ranged(COUNT), help="Worker processes."),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted pack in the same folder."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing TOKENS folder first."),
        docs_per_unit: int = typer.Option(2000, "--docs-per-unit", callback=ranged(COUNT), help="Documents per work unit (and per shard)."),
        text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text."),
        id_field: str = typer.Option("id", "--id-field", help="JSON field holding the document id (the val split is chosen by its hash)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
        allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help=ALLOW_INCOMPLETE),
    ) -> None:
        """Encode a corpus and pack it into fixed-length sequences (numpy memmap shards + manifest)."""
        from gristmill.tokenizer import pack_corpus

        try:
            m = pack_corpus(input, tokenizer, out, seq_len=seq_len, val_fraction=val_fraction, workers=workers,
                            resume=resume, overwrite=overwrite, docs_per_unit=docs_per_unit, text_field=text_field,
                            id_field=id_field, progress=progress, console=console, allow_incomplete=allow_incomplete)
        except OSError as exc:
            raise _output_error(exc) from None
        tokens = sum(s["tokens"] for s in m["splits"].values())
        for name, info in m["splits"].items():
            console.print(f"{name}: {info['sequences']:,} sequences of {seq_len}, {info['tokens']:,} tokens, "
                          f"{info['documents']:,} documents")
        console.print(f"{m['source']['documents']:,} documents read ({m['source']['empty_documents']:,} empty) in "
                      f"{m['seconds']:.1f} s, {tokens / max(m['seconds'], 1e-9):,.0f} tokens/s -> {out}", markup=False)
