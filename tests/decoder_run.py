"""A small decoder run for the decoder tests, made with the real tokenizer, packer and pretraining loop."""

from __future__ import annotations

from pathlib import Path

from tests.sample import write_sample_head


def build_tokens(work: Path, docs: int = 300, seq_len: int = 32) -> Path:
    """Byte-level BPE tokenizer (1,000 tokens) and packed shards of the first ``docs`` sample documents."""
    from gristmill.tokenizer import pack_corpus, train_tokenizer

    work.mkdir(parents=True, exist_ok=True)
    source = write_sample_head(work / "docs.jsonl", docs)
    tok = train_tokenizer(source, work / "tok", kind="bpe", vocab_size=1000, show_progress=False)
    pack_corpus(source, tok, work / "tokens", seq_len=seq_len, val_fraction=0.1)
    return work / "tokens"


def decoder_config_file(tokens: Path, out: Path, context: int = 64) -> Path:
    """A 2-layer, 32-wide decoder for ``tokens``' tokenizer with a context of ``context`` positions."""
    from gristmill.model.config import DecoderConfig
    from gristmill.tokenizer import TokenDataset

    ds = TokenDataset(tokens)
    DecoderConfig(vocab_size=ds.vocab_size, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                  max_position=context, pad_id=ds.special["pad"], bos_id=ds.special["cls"],
                  eos_id=ds.special["sep"]).to_json(out)
    return out


def build_decoder_run(work: Path, steps: int = 60) -> Path:
    """RUN folder of a decoder pretrained for ``steps`` steps on the sample (seconds on one thread)."""
    from gristmill.train.pretrain import PretrainConfig, pretrain

    tokens = build_tokens(work)
    config = decoder_config_file(tokens, work / "decoder.json")
    run = work / "run"
    pretrain(PretrainConfig(data=str(tokens), out=str(run), arch="decoder", config_file=str(config), steps=steps,
                            batch_size=16, lr=3e-3, warmup=5, log_every=10, eval_every=steps, eval_batches=2,
                            save_every=steps, keep=1, progress=False, tensorboard=False))
    return run
