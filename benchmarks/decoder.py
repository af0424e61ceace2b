"""Benchmark gristmill's decoder against ``transformers.LlamaForCausalLM``: training and generation speed.

``train``: training steps (forward, next-token cross-entropy, backward, fused AdamW) of gristmill's
CausalLM and of the same model as ``LlamaForCausalLM`` (weights converted with ``gristmill.model.hf``,
loss through its ``labels=`` argument), on the same batches (``--batch`` x 128 tokens of random ids
from an 8,192-token vocabulary), fp32 and bf16 autocast, one thread. Both run in one process, one
step each in turn, so the load of other jobs falls on both alike; the ratio is the median of the
per-round ratios. CPU seconds (``time.process_time``) are reported next to wall-clock seconds, because
the machine is shared. gristmill computes the loss as ``gristmill pretrain`` does, the vocabulary
projection and cross-entropy fused chunk by chunk (``model/loss.py``); the same model with full logits
and ``F.cross_entropy`` runs beside it, to show what that buys. ``--compile`` adds gristmill under
``torch.compile``.

``generate``: greedy generation of 128 new tokens after a 16-token prompt, batch 1 and batch 8, with
gristmill's KV cache, with transformers' ``generate`` (its cache), and both without a cache, each once
per round for ``--rounds`` rounds in turn (ratios: median of the per-round ratios of CPU time). The
model is a trained decoder run (``--run``) or a random one of ``--size``. At batch 1 the script also
checks that both produce the same tokens.

``memory``: the peak resident memory of two training steps (fp32), transformers, gristmill and gristmill
with full logits, each in a fresh process.

``ceiling``: the time of each training step spent in matmuls, by torch's profiler. Both models run the same
matmuls, so transformers' step time over gristmill's matmul time bounds the speed-up at equal arithmetic.

Usage::

    python benchmarks/decoder.py train --sizes tiny,mini --rounds 3 [--compile]
    python benchmarks/decoder.py ceiling --sizes tiny,mini
    python benchmarks/decoder.py memory --sizes tiny --vocab 32000 --batch 16 --seq-len 512
    python benchmarks/decoder.py generate --run RUN [--no-cache-too]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Scripts in benchmarks/ put that folder first on sys.path, where a sibling named like a standard
# module (tokenize.py) would shadow it; the standard library must win.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOCAB, SEQ_LEN = 8192, 128
# gristmill's decoder with its logits computed in full, then F.cross_entropy: what the fused loss replaced.
UNFUSED = "gristmill, full logits + F.cross_entropy"


def timed(fn: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def next_token_batch(batch: int, vocab: int = VOCAB, seq_len: int = SEQ_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids and gristmill's pretraining labels for them (train/causal.py): the next token, the last
    position ignored; the same batch for every implementation and every run."""
    ids = torch.randint(5, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    return ids, labels


def gristmill_and_llama(size: str, vocab: int = VOCAB, seq_len: int = SEQ_LEN) -> tuple[Any, Any, Any]:
    """gristmill's decoder of ``size`` (seed 0) and the same weights as ``LlamaForCausalLM``, both training."""
    from gristmill.model.config import DecoderConfig
    from gristmill.model.decoder import CausalLM
    from gristmill.model.hf import to_llama

    config = DecoderConfig.named(size, vocab, max_position=max(512, seq_len))
    torch.manual_seed(0)
    ours = CausalLM(config).train()
    return config, ours, to_llama(ours, config).train()


# ---------------------------------------------------------------- training


def train_steps(size: str, precision: str, batch: int, rounds: int, compile_too: bool) -> dict[str, Any]:
    from gristmill.model.decoder import CausalLM

    config, ours, theirs = gristmill_and_llama(size)
    unfused = CausalLM(config).train()
    unfused.load_state_dict(ours.state_dict())
    models: dict[str, torch.nn.Module] = {"transformers": theirs, "gristmill": ours, UNFUSED: unfused}
    if compile_too:
        twin = CausalLM(config).train()
        twin.load_state_dict(ours.state_dict())
        models["gristmill + torch.compile"] = torch.compile(twin)
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for name, m in models.items()}
    ids, labels = next_token_batch(batch)
    targets = int((labels != -100).sum())
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(name: str) -> float:
        model, opt = models[name], optimizers[name]
        with autocast:
            if name == "transformers":
                loss = model(input_ids=ids, labels=ids).loss
            elif name == UNFUSED:
                logits = model(ids)
            else:  # as `gristmill pretrain` computes it (model/loss.py), as a mean like transformers'
                loss = model(ids, labels=labels) / targets
        if name == UNFUSED:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    losses = {name: step(name) for name in models}  # warm-up (and compilation), first-batch loss
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(rounds):
        for name in models:
            times[name].append(timed(lambda n=name: step(n)))
    tokens = batch * SEQ_LEN
    out: dict[str, Any] = {"size": size, "precision": precision, "batch": batch, "rounds": rounds, "rows": {}}
    for name, t in times.items():
        wall = statistics.median(w for w, _ in t)
        cpu = statistics.median(c for _, c in t)
        out["rows"][name] = {"first_loss": round(losses[name], 4), "s_per_step": round(wall, 3),
                             "cpu_s_per_step": round(cpu, 3), "tokens_per_s": round(tokens / wall),
                             "tokens_per_cpu_s": round(tokens / cpu)}
    for name in models:
        if name != "transformers":
            out["rows"][name]["speedup_wall"] = round(statistics.median(
                h[0] / g[0] for h, g in zip(times["transformers"], times[name])), 2)
            out["rows"][name]["speedup_cpu"] = round(statistics.median(
                h[1] / g[1] for h, g in zip(times["transformers"], times[name])), 2)
    return out


def matmul_ceiling(size: str, precision: str, batch: int) -> dict[str, Any]:
    """How much of a training step is matmuls, for transformers' Llama and for gristmill (torch profiler, 3 steps).

    Both run the same matmuls. If every other operation of gristmill's step cost nothing, its step would
    take its matmul time, so ``transformers' step / gristmill's matmuls`` bounds the speed-up that
    equal arithmetic can give.
    """
    _, ours, theirs = gristmill_and_llama(size)
    ids, labels = next_token_batch(batch)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    out: dict[str, Any] = {"size": size, "precision": precision, "batch": batch}
    for name, model, loss_of in (("transformers", theirs, lambda: theirs(input_ids=ids, labels=ids).loss),
                                 ("gristmill", ours, lambda: ours(ids, labels=labels))):
        def step(model: torch.nn.Module = model, loss_of: Any = loss_of) -> None:
            with autocast:
                loss = loss_of()
            loss.backward()
            model.zero_grad(set_to_none=True)

        step(), step()
        with torch.profiler.profile() as prof:
            for _ in range(3):
                step()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events) / 3e6
        matmuls = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")) / 3e6
        out[name] = {"step_cpu_s": round(total, 3), "matmul_cpu_s": round(matmuls, 3)}
    out["ceiling"] = round(out["transformers"]["step_cpu_s"] / out["gristmill"]["matmul_cpu_s"], 2)
    return out


MEMORY_CASES = ("transformers", "gristmill", UNFUSED)


def peak_memory_worker(case: str, size: str, vocab: int, batch: int, seq_len: int) -> dict[str, Any]:
    """Two training steps of one implementation in this (fresh) process; its peak resident memory."""
    import resource

    from gristmill.model.config import DecoderConfig
    from gristmill.model.decoder import CausalLM
    from gristmill.model.hf import to_llama

    # Not gristmill_and_llama: that builds both models, and the other's weights would count in this peak.
    config = DecoderConfig.named(size, vocab, max_position=max(512, seq_len))
    torch.manual_seed(0)
    model = CausalLM(config).train()
    if case == "transformers":
        model = to_llama(model, config).train()
    ids, labels = next_token_batch(batch, vocab, seq_len)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(2):
        if case == "transformers":
            loss = model(input_ids=ids, labels=ids).loss
        elif case == UNFUSED:
            loss = F.cross_entropy(model(ids).float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        else:
            loss = model(ids, labels=labels)
        loss.backward()
        model.zero_grad(set_to_none=True)
    return {"case": case, "size": size, "vocab": vocab, "batch": batch, "seq_len": seq_len,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "before_steps_mb": round(before)}


def peak_memory(size: str, vocab: int, batch: int, seq_len: int) -> dict[str, Any]:
    """Each implementation alone in a fresh process (peak RSS never goes down, so one process per case)."""
    import subprocess

    row: dict[str, Any] = {"size": size, "vocab": vocab, "batch": batch, "seq_len": seq_len, "fp32": True}
    for case in MEMORY_CASES:
        cmd = [sys.executable, __file__, "memory-worker", "--case", case, "--sizes", size, "--vocab", str(vocab),
               "--batch", str(batch), "--seq-len", str(seq_len)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row[case] = json.loads(out)["peak_rss_mb"]
    row["gristmill_vs_transformers"] = round(row["gristmill"] / row["transformers"], 2)
    return row


# ---------------------------------------------------------------- generation


def generation(run: str | None, size: str, new_tokens: int, prompt_len: int, batches: list[int],
               no_cache_too: bool, rounds: int) -> list[dict[str, Any]]:
    from gristmill.model.config import DecoderConfig
    from gristmill.model.decoder import CausalLM
    from gristmill.model.hf import to_llama
    from gristmill.serve.generate import Sampling, TextGenerator
    from gristmill.train.checkpoint import load_decoder_run

    if run:
        model, config, _ = load_decoder_run(run)
    else:
        config = DecoderConfig.named(size, VOCAB, max_position=512)
        torch.manual_seed(0)
        model = CausalLM(config).eval()
    generator = TextGenerator(model, config, tokenizer=None)
    llama = to_llama(model, config)
    sampling = Sampling(max_new_tokens=new_tokens, ignore_eos=True)
    results = []
    for batch in batches:
        prompts = torch.randint(5, config.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(2))
        prompts[:, 0] = config.bos_id
        lists = prompts.tolist()

        def ours(cache: bool = True, lists: list[list[int]] = lists) -> list[list[int]]:
            return generator.generate_ids(lists, sampling, use_cache=cache)[0]

        def theirs(cache: bool = True, prompts: torch.Tensor = prompts) -> list[list[int]]:
            with torch.inference_mode():
                out = llama.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                     max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=cache,
                                     pad_token_id=config.pad_id)
            return out[:, prompt_len:].tolist()

        ours(), theirs()  # warm-up
        cases = [("gristmill, KV cache", ours, True), ("transformers generate, cache", theirs, True)]
        if no_cache_too:
            cases += [("gristmill, no cache", ours, False), ("transformers generate, no cache", theirs, False)]
        row: dict[str, Any] = {"batch": batch, "new_tokens": new_tokens, "prompt_tokens": prompt_len,
                               "model": run or f"random {size}", "cases": {}}
        tokens: dict[str, list[list[int]]] = {}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
        for _ in range(rounds):  # each case once per round, in turn, so load falls on all alike
            for name, fn, cache in cases:
                result: list[list[int]] = []
                times[name].append(timed(lambda fn=fn, cache=cache, result=result: result.extend(fn(cache))))
                tokens[name] = result
        for name, t in times.items():
            wall, cpu = statistics.median(w for w, _ in t), statistics.median(c for _, c in t)
            row["cases"][name] = {"s": round(wall, 3), "cpu_s": round(cpu, 3),
                                  "tokens_per_s": round(batch * new_tokens / wall, 1),
                                  "tokens_per_cpu_s": round(batch * new_tokens / cpu, 1)}

        def ratio(slow: str, fast: str, times: dict[str, list[tuple[float, float]]] = times) -> float:
            """Median of the per-round ratios of CPU time."""
            return round(statistics.median(a[1] / b[1] for a, b in zip(times[slow], times[fast])), 2)

        row["rounds"] = rounds
        row["speedup_vs_transformers_cache"] = ratio("transformers generate, cache", "gristmill, KV cache")
        if no_cache_too:
            row["cache_saves_gristmill"] = ratio("gristmill, no cache", "gristmill, KV cache")
        row["same_tokens_as_transformers"] = tokens["gristmill, KV cache"] == tokens["transformers generate, cache"]
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--sizes", default="tiny,mini")
    t.add_argument("--precisions", default="fp32,bf16")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--compile", action="store_true")
    c = sub.add_parser("ceiling", help="Time in matmuls of both training steps (torch profiler).")
    c.add_argument("--sizes", default="tiny,mini")
    c.add_argument("--precisions", default="fp32,bf16")
    c.add_argument("--batch", type=int, default=32)
    m = sub.add_parser("memory", help="Peak memory of two training steps, each implementation in a fresh process.")
    w = sub.add_parser("memory-worker")
    w.add_argument("--case", choices=MEMORY_CASES, required=True)
    for p in (m, w):
        p.add_argument("--sizes", default="tiny")
        p.add_argument("--vocab", type=int, default=VOCAB)
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--seq-len", type=int, default=SEQ_LEN)
    g = sub.add_parser("generate")
    g.add_argument("--run", default=None, help="A decoder run (default: random weights of --size).")
    g.add_argument("--size", default="tiny")
    g.add_argument("--new-tokens", type=int, default=128)
    g.add_argument("--prompt-tokens", type=int, default=16)
    g.add_argument("--batches", default="1,8")
    g.add_argument("--no-cache-too", action="store_true")
    g.add_argument("--rounds", type=int, default=5)
    for p in (t, g, c, m, w):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "memory-worker":
        print(json.dumps(peak_memory_worker(args.case, args.sizes, args.vocab, args.batch, args.seq_len)))
        return
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {args.threads}", flush=True)
    results: list[dict[str, Any]] = []
    if args.what == "memory":
        for size in args.sizes.split(","):
            results.append(peak_memory(size, args.vocab, args.batch, args.seq_len))
            print(json.dumps(results[-1]), flush=True)
    elif args.what == "train":
        for size in args.sizes.split(","):
            for precision in args.precisions.split(","):
                row = train_steps(size, precision, args.batch, args.rounds, args.compile and precision == "fp32")
                print(json.dumps(row), flush=True)
                results.append(row)
    elif args.what == "ceiling":
        for size in args.sizes.split(","):
            for precision in args.precisions.split(","):
                row = matmul_ceiling(size, precision, args.batch)
                print(json.dumps(row), flush=True)
                results.append(row)
    else:
        results = generation(args.run, args.size, args.new_tokens, args.prompt_tokens,
                             [int(b) for b in args.batches.split(",")], args.no_cache_too, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
