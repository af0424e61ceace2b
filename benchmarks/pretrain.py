"""Benchmark MLM pretraining: gristmill's MaskedLM against ``transformers.BertForMaskedLM``, and a loss curve.

``speed`` (default): training steps (forward, backward, AdamW) on the same batches (32 x 128 tokens, the
same 15% masks), same model shape, same optimizer (torch's fused AdamW, lr 1e-4: the transformers Trainer
default), for ``mini`` and ``small``, in fp32 and in bf16 autocast. Both models start from the same
weights (gristmill's, converted with ``gristmill.model.hf``) and each prints its loss on the first batch,
so the two compute the same objective. Configurations compared with each other (transformers and
gristmill at one size and precision; the rungs of the ablation ladder) train in one process, one step
each in turn, so the load of other jobs on a shared machine falls on all of them alike; ratios are
medians of per-round ratios. Peak memory (``ru_maxrss``) is measured for each configuration alone in a
fresh process. The ablation ladder: transformers, then gristmill with its choices (vocabulary projection
at every position, separate Q/K/V matmuls, dropout 0.1), then each change added in turn (projection only
at masked positions, the last layer only at masked positions, fused QKV, dropout off, the projection and
cross-entropy fused into one step (`model/loss.py`), torch.compile),
and gristmill's default in bf16.

Model FLOPs utilisation: FLOPs per step from the model shape (6 x parameters touched per token for the
matmuls, plus 12 x layers x seq_len x hidden per token for attention; the vocabulary projection counted
for the positions each implementation computes), divided by the step time and by the CPU's peak, which
is estimated from ``lscpu``: cores used x clock (``cpu MHz`` of /proc/cpuinfo) x FLOPs per cycle per core
(AVX-512 with two 512-bit FMA pipes: 64 fp32; AVX2: 32; bf16 with AVX512_BF16: 2x fp32; AMX: 1024).

``curve``: pretrain ``mini`` on packed shards of the cleaned corpus for a fixed token budget with
``gristmill pretrain`` and copy its ``loss.png`` and metrics next to the results.

Usage::

    python benchmarks/pretrain.py speed [--sizes mini,small] [--steps 5] [--data TOKENS] [--json out.json]
    python benchmarks/pretrain.py curve --data TOKENS --tokens 2000000 --out RUN

Timings on a shared machine are noisy; the ratios come from runs made back to back in one invocation.
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
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH, SEQ_LEN, VOCAB = 32, 128, 30522

LADDER = [
    ("transformers BertForMaskedLM (dropout 0.1)", {"impl": "hf"}),
    ("gristmill as HF (full projection, separate QKV, dropout 0.1)",
     {"impl": "gristmill", "full_projection": True, "unfused_qkv": True, "dropout": 0.1}),
    ("+ vocabulary projection only at masked positions",
     {"impl": "gristmill", "sparse_last_layer": False, "unfused_qkv": True, "dropout": 0.1, "fused_loss": False}),
    ("+ last layer only at masked positions",
     {"impl": "gristmill", "unfused_qkv": True, "dropout": 0.1, "fused_loss": False}),
    ("+ fused QKV", {"impl": "gristmill", "dropout": 0.1, "fused_loss": False}),
    ("+ dropout off", {"impl": "gristmill", "dropout": 0.0, "fused_loss": False}),
    ("+ projection and cross-entropy fused (gristmill default)", {"impl": "gristmill", "dropout": 0.0}),
    ("+ torch.compile", {"impl": "gristmill", "dropout": 0.0, "compile": True}),
    ("gristmill default + bf16 autocast (no compile)", {"impl": "gristmill", "dropout": 0.0, "precision": "bf16"}),
]


# ---------------------------------------------------------------- peak FLOPs of this CPU


def cpu_peak(threads: int) -> dict[str, Any]:
    """Peak fp32 and bf16 FLOP/s of ``threads`` cores, from lscpu flags, core count and /proc/cpuinfo clock."""
    flags, cores, mhz, model = set(), os.cpu_count() or 1, None, "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Flags":
                flags = set(value.split())
            elif key.strip() == "CPU(s)":
                cores = int(value)
            elif key.strip() == "Model name":
                model = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text()).group(1))
    except (OSError, AttributeError):
        mhz = 2000.0
    fp32_per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    if "amx_bf16" in flags:
        bf16_per_cycle = 1024
    elif "avx512_bf16" in flags:
        bf16_per_cycle = 2 * fp32_per_cycle
    else:
        bf16_per_cycle = fp32_per_cycle
    hz = min(threads, cores) * mhz * 1e6
    return {"model": model, "cores": cores, "mhz": mhz, "fp32_flops_per_cycle": fp32_per_cycle,
            "bf16_flops_per_cycle": bf16_per_cycle, "fp32": hz * fp32_per_cycle, "bf16": hz * bf16_per_cycle,
            "flags": sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))}


def step_flops(size: str, vocab: int, masked: int, full_projection: bool, sparse_last: bool) -> float:
    """Training FLOPs of one step (forward + backward = 3 x forward) from the model shape."""
    from gristmill.model.config import ModelConfig

    c = ModelConfig.named(size, vocab)
    tokens = BATCH * SEQ_LEN
    layer = 2 * (4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size)
    attention = 2 * 2 * SEQ_LEN * c.hidden_size  # QK^T and AV per token per layer
    encoder = tokens * c.num_layers * (layer + attention)
    if sparse_last:  # the last layer computes queries, output, FFN and attention at masked positions only
        h, i = c.hidden_size, c.intermediate_size
        encoder -= (tokens - masked) * (2 * (2 * h * h + 2 * h * i) + attention)
    head_rows = tokens if full_projection else masked
    head = head_rows * 2 * (c.hidden_size * c.hidden_size + c.hidden_size * vocab)
    return 3.0 * (encoder + head)


# ---------------------------------------------------------------- the workers


def make_batches(args: argparse.Namespace, steps: int, vocab: int) -> list[dict[str, Any]]:
    import torch

    from gristmill.train.masking import MaskingSpec, mask_tokens

    if args.data:
        from gristmill.tokenizer import TokenDataset

        ds = TokenDataset(args.data, "train")
        if ds.seq_len != SEQ_LEN:
            raise SystemExit(f"{args.data} has {ds.seq_len}-token sequences; this benchmark uses {SEQ_LEN}")
        special = ds.special
        order = ds.order(0, 0)
        rows = [torch.as_tensor(ds.get_batch(order[i * BATCH:(i + 1) * BATCH])["input_ids"]) for i in range(steps)]
    else:
        special = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
        g = torch.Generator().manual_seed(0)
        rows = []
        for _ in range(steps):
            ids = torch.randint(5, vocab, (BATCH, SEQ_LEN), generator=g)
            ids[:, 0] = special["cls"]
            ids[:, -1] = special["sep"]
            rows.append(ids)
    spec = MaskingSpec(vocab_size=vocab, mask_id=special["mask"], special_ids=tuple(sorted(special.values())))
    g = torch.Generator().manual_seed(1)
    out = []
    for ids in rows:
        m = mask_tokens(ids, spec, g)
        hf_labels = torch.full_like(ids, -100)
        hf_labels[m.masked] = m.labels
        out.append({"input_ids": m.input_ids, "masked": m.masked, "labels": m.labels, "hf_labels": hf_labels})
    return out


def unfuse_qkv(model: Any) -> None:
    """Replace each fused QKV matmul by three (HF's layout), keeping the weights: the ablation's baseline."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SeparateQKV(nn.Module):
        def __init__(self, attn: nn.Module) -> None:
            super().__init__()
            hidden = attn.out.in_features
            self.num_heads, self.head_dim, self.dropout_p, self.out = attn.num_heads, attn.head_dim, attn.dropout_p, attn.out
            self.q, self.k, self.v = (nn.Linear(hidden, hidden) for _ in range(3))
            with torch.no_grad():
                for lin, w, b in zip((self.q, self.k, self.v), attn.qkv.weight.chunk(3), attn.qkv.bias.chunk(3)):
                    lin.weight.copy_(w)
                    lin.bias.copy_(b)

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    select: torch.Tensor | None = None) -> torch.Tensor:
            b, t, h = x.shape

            def heads(y: torch.Tensor, n: int) -> torch.Tensor:
                return y.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

            drop = self.dropout_p if self.training else 0.0
            if select is None:
                y = F.scaled_dot_product_attention(heads(self.q(x), t), heads(self.k(x), t), heads(self.v(x), t),
                                                   attn_mask=mask, dropout_p=drop)
                return self.out(y.transpose(1, 2).reshape(b, t, h))
            # as gristmill's last layer: queries only at the selected positions (padded per row)
            rows, cols = select.nonzero(as_tuple=True)
            slot = (select.cumsum(1) - 1)[rows, cols]
            width = int(select.sum(1).max()) if rows.numel() else 0
            q_sel = self.q(x[rows, cols])
            q = q_sel.new_zeros(b, width, h).index_put((rows, slot), q_sel)
            y = F.scaled_dot_product_attention(heads(q, width), heads(self.k(x), t), heads(self.v(x), t),
                                               attn_mask=mask, dropout_p=drop)
            return self.out(y.transpose(1, 2).reshape(b, width, h)[rows, slot])

    for layer in model.encoder.layers:
        layer.attention = SeparateQKV(layer.attention)


class Trainer:
    """One model with its optimizer and loss function; ``step(batch)`` trains on a batch and returns seconds."""

    def __init__(self, job: dict[str, Any], vocab: int) -> None:
        import torch
        import torch.nn.functional as F

        from gristmill.model.config import ModelConfig
        from gristmill.model.hf import to_bert_config, to_bert_state_dict
        from gristmill.model.transformer import MaskedLM

        self.job, self.bf16 = job, job["precision"] == "bf16"
        dropout = job.get("dropout", 0.1)
        config = ModelConfig.named(job["size"], vocab, dropout=dropout, attention_dropout=dropout)
        torch.manual_seed(0)  # every model of a run starts from the same weights
        ours = MaskedLM(config)
        if job["impl"] == "hf":
            from transformers import BertForMaskedLM

            model = BertForMaskedLM(to_bert_config(config))
            model.load_state_dict(to_bert_state_dict(ours.state_dict(), config), strict=False)
            model.tie_weights()

            def loss_of(b: dict[str, Any]) -> torch.Tensor:
                return model(input_ids=b["input_ids"], labels=b["hf_labels"]).loss
        else:
            model = ours
            if job.get("unfused_qkv"):
                unfuse_qkv(model)
            run = torch.compile(model) if job.get("compile") else model
            full, sparse_last = job.get("full_projection", False), job.get("sparse_last_layer", True)

            def loss_of(b: dict[str, Any]) -> torch.Tensor:
                if full:
                    logits = run(b["input_ids"])
                    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), b["hf_labels"].view(-1))
                if not sparse_last:  # every layer at every position, then the head at the masked ones
                    hidden = model.encoder(b["input_ids"])[b["masked"]]
                    logits = model.head(hidden, model.encoder.embeddings.word_embeddings.weight)
                    return F.cross_entropy(logits.float(), b["labels"])
                if not job.get("fused_loss", True):
                    return F.cross_entropy(run(b["input_ids"], masked_positions=b["masked"]).float(), b["labels"])
                # as `gristmill pretrain` computes it (model/loss.py), as a mean like transformers'
                return run(b["input_ids"], masked_positions=b["masked"], labels=b["labels"]) / b["labels"].numel()

        self.model, self.loss_of = model, loss_of
        # fused AdamW: what the transformers Trainer uses by default with torch >= 2.8, for both
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def first_loss(self, batch: dict[str, Any]) -> float:
        import torch

        self.model.eval()
        with torch.no_grad():
            loss = float(self.loss_of(batch))
        self.model.train()
        return loss

    def step(self, batch: dict[str, Any]) -> float:
        import torch

        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.loss_of(batch)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0


def worker(args: argparse.Namespace) -> None:
    """Train the listed configurations in turns, one step each per round, so that the load of other jobs
    on a shared machine falls on all of them alike; print the step times of each."""
    import torch

    torch.set_num_threads(args.threads)
    jobs = json.loads(args.jobs)
    vocab = args.vocab
    if args.data:
        from gristmill.tokenizer import TokenDataset

        vocab = TokenDataset(args.data, "train").vocab_size
    warmup = args.warmup + (3 if any(j.get("compile") for j in jobs) else 0)
    batches = make_batches(args, warmup + args.steps, vocab)
    trainers = [Trainer(job, vocab) for job in jobs]
    first = [t.first_loss(batches[0]) for t in trainers]
    times: list[list[float]] = [[] for _ in trainers]
    for i, batch in enumerate(batches):
        for k, trainer in enumerate(trainers):
            seconds = trainer.step(batch)
            if i >= warmup:
                times[k].append(seconds)
    masked = int(sum(int(b["masked"].sum()) for b in batches[warmup:]) / args.steps)
    print(json.dumps([{**job, "vocab": vocab, "first_loss": loss, "step_s": t, "masked_per_step": masked,
                       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
                      for job, loss, t in zip(jobs, first, times)]))


def run_jobs(args: argparse.Namespace, jobs: list[dict[str, Any]], steps: int, warmup: int) -> list[dict[str, Any]]:
    cmd = [sys.executable, __file__, "worker", "--jobs", json.dumps(jobs), "--steps", str(steps),
           "--warmup", str(warmup), "--threads", str(args.threads), "--vocab", str(args.vocab)]
    cmd += ["--data", args.data] if args.data else []
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.job_timeout,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    except subprocess.TimeoutExpired:
        return [{**job, "error": f"did not finish in {args.job_timeout}s"} for job in jobs]
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return [{**job, "error": tail} for job in jobs]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


# ---------------------------------------------------------------- the report


def speed(args: argparse.Namespace) -> None:
    peak = cpu_peak(args.threads)
    print(f"CPU: {peak['model']}, {peak['cores']} cores at {peak['mhz']:.0f} MHz, flags {' '.join(peak['flags'])}")
    print(f"estimated peak of {min(args.threads, peak['cores'])} core(s): fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s "
          f"({peak['fp32_flops_per_cycle']} FLOP/cycle/core), bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s "
          f"({peak['bf16_flops_per_cycle']} FLOP/cycle/core)")
    print(f"batch {BATCH} x {SEQ_LEN}, {args.steps} timed rounds after {args.warmup} warm-up rounds, {args.threads} "
          f"thread(s), data: {args.data or f'random ids, vocabulary {args.vocab}'}")
    print("Configurations compared with each other run in one process, one step each in turn, so the other jobs "
          "on the machine slow them alike; tokens/s from the median step, ratios = median of per-round ratios. "
          "Peak RSS: each configuration alone in a fresh process (2 steps).\n")
    results: list[dict[str, Any]] = []
    memory: dict[str, float] = {}

    def key(job: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in job.items() if k in ("impl", "size", "precision", "full_projection",
                           "sparse_last_layer", "unfused_qkv", "dropout", "compile", "fused_loss")}, sort_keys=True)

    def peak_rss(job: dict[str, Any]) -> float | None:
        if key(job) not in memory:
            (alone,) = run_jobs(args, [job], steps=1, warmup=1)
            memory[key(job)] = alone.get("peak_rss_mb")
        return memory[key(job)]

    header = ("| configuration | size | precision | tokens/s | s/step (median) | GFLOP/step | MFU | peak RSS MB "
              "| loss, first batch |\n|---|---|---|---|---|---|---|---|---|")

    def report(label: str, r: dict[str, Any]) -> None:
        r["label"] = label
        results.append(r)
        if "error" in r:
            print(f"| {label} | {r['size']} | {r['precision']} | failed: {r['error'][:150]} |||||", flush=True)
            return
        full = r["impl"] == "hf" or r.get("full_projection", False)
        sparse = r["impl"] == "gristmill" and not full and r.get("sparse_last_layer", True)
        flops = step_flops(r["size"], r["vocab"], r["masked_per_step"], full, sparse)
        r["step_s_median"] = median(r["step_s"])
        r["tokens_per_s"] = BATCH * SEQ_LEN / r["step_s_median"]
        r["mfu"] = flops / r["step_s_median"] / peak[r["precision"]]
        r["gflop_per_step"] = flops / 1e9
        r["peak_rss_mb"] = peak_rss({k: v for k, v in r.items() if k in json.loads(key(r))})
        rss = f"{r['peak_rss_mb']:,.0f}" if r["peak_rss_mb"] else "?"
        print(f"| {label} | {r['size']} | {r['precision']} | {r['tokens_per_s']:,.0f} | {r['step_s_median']:.2f} "
              f"| {flops / 1e9:.0f} | {100 * r['mfu']:.1f}% | {rss} | {r['first_loss']:.4f} |", flush=True)

    def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        if "step_s" not in a or "step_s" not in b:
            return None
        return median([x / y for x, y in zip(a["step_s"], b["step_s"])])

    if args.sizes:
        print(header)
    pairs = []
    for size in args.sizes:
        for precision in ("fp32", "bf16"):
            hf, ours = run_jobs(args, [{"impl": "hf", "size": size, "precision": precision},
                                       {"impl": "gristmill", "size": size, "precision": precision, "dropout": 0.0}],
                                args.steps, args.warmup)
            report("transformers BertForMaskedLM", hf)
            report("gristmill MaskedLM", ours)
            pairs.append((size, precision, hf, ours))
    if pairs:
        print("\nspeed-up (gristmill / transformers, same precision, median of per-round ratios):")
    for size, precision, hf, ours in pairs:
        ratio = paired_ratio(hf, ours)
        if ratio:
            print(f"  {size} {precision}: {ratio:.2f}x tokens/s; peak memory {ours['peak_rss_mb']:,.0f} MB vs "
                  f"{hf['peak_rss_mb']:,.0f} MB")
    for size in args.sizes:
        hf32 = next((r for s, p, r, _ in pairs if s == size and p == "fp32" and "tokens_per_s" in r), None)
        gm16 = next((r for s, p, _, r in pairs if s == size and p == "bf16" and "tokens_per_s" in r), None)
        if hf32 and gm16:
            print(f"  {size}: gristmill bf16 vs transformers fp32: {gm16['tokens_per_s'] / hf32['tokens_per_s']:.2f}x "
                  "(different rounds, so noisier)")
    if args.ablation:
        print("\nablation (each row adds one change to the row above; all rows of a size in one process):\n")
        print(header)
        for size in args.ablation_sizes:
            ladder = [(label, {"size": size, "precision": "fp32", **job}) for label, job in LADDER
                      if args.compile or not job.get("compile")]
            rows = run_jobs(args, [job for _, job in ladder], args.steps, args.warmup)
            for (label, _), r in zip(ladder, rows):
                report(label, r)
            print()
            for (label, _), prev, cur in zip(ladder[1:], rows, rows[1:]):
                ratio = paired_ratio(prev, cur)
                if ratio:
                    cur["vs_previous"] = ratio
                    print(f"  {size}: {label}: {ratio:.2f}x")
            default = next(r for (label, _), r in zip(ladder, rows) if label.endswith("(gristmill default)"))
            for name, base in (("gristmill as HF", rows[1]), ("transformers", rows[0])):
                for what, row in (("gristmill default, fp32", default), ("gristmill default, bf16", rows[-1])):
                    ratio = paired_ratio(base, row)
                    if ratio:
                        print(f"  {size}: {what} over {name} fp32: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak": peak, "results": results}, indent=2) + "\n")


def curve(args: argparse.Namespace) -> None:
    """Pretrain mini on real shards for a token budget and keep the loss curve."""
    from gristmill.tokenizer import TokenDataset

    ds = TokenDataset(args.data, "train")
    steps = max(1, int(args.tokens // (args.batch_size * ds.seq_len)))
    cmd = [sys.executable, "-m", "gristmill", "pretrain", "--data", args.data, "--out", args.out,
           "--model-size", args.size, "--steps", str(steps), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--eval-every", str(max(1, steps // 10)), "--eval-batches", "8",
           "--save-every", str(max(1, steps // 4)), "--log-every", "5", "--overwrite", "--no-progress"]
    if args.bf16:
        cmd.append("--bf16")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print(" ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines() if line]
    evals = [r for r in rows if r["kind"] == "eval"]
    print(f"\n{steps} steps x {args.batch_size} x {ds.seq_len} = {steps * args.batch_size * ds.seq_len:,} tokens "
          f"in {seconds:.0f}s")
    print("| step | tokens | val loss | masked acc | perplexity |\n|---|---|---|---|---|")
    for r in evals:
        print(f"| {r['step']} | {r['tokens']:,} | {r['loss']:.3f} | {r['accuracy']:.3f} | {r['perplexity']:.1f} |")
    if args.copy_to:
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(args.out) / "loss.png", dest / f"pretrain-{args.size}-loss.png")
        shutil.copy(Path(args.out) / "metrics.jsonl", dest / f"pretrain-{args.size}-metrics.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("speed", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--steps", type=int, default=5)
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        p.add_argument("--vocab", type=int, default=VOCAB)
        p.add_argument("--data", default=None, help="TOKENS folder with 128-token sequences (default: random ids)")
        if name == "worker":
            p.add_argument("--jobs", required=True)
        else:
            p.add_argument("--sizes", type=lambda s: [x for x in s.split(",") if x], default=["mini", "small"],
                           help="sizes of the head-to-head comparison ('' for none)")
            p.add_argument("--ablation-sizes", type=lambda s: [x for x in s.split(",") if x], default=["mini"])
            p.add_argument("--no-ablation", dest="ablation", action="store_false")
            p.add_argument("--no-compile", dest="compile", action="store_false")
            p.add_argument("--json", default=None)
            p.add_argument("--job-timeout", type=int, default=1800, help="seconds per configuration")
    p = sub.add_parser("curve")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", default="mini")
    p.add_argument("--tokens", type=float, default=2e6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--copy-to", default=None)
    args = parser.parse_args()
    if args.command == "worker":
        worker(args)
    elif args.command == "curve":
        curve(args)
    else:
        if args.command is None:
            args = parser.parse_args(["speed", *sys.argv[1:]])
        speed(args)


if __name__ == "__main__":
    main()
