"""Benchmark the corpus-scale dedup steps on the shared Debian corpus (``../shared/data/corpus``).

Sections (``--only`` picks some):

- ``accuracy``: the recipe noop -> exact_dedup -> minhash_dedup -> decontaminate over the whole corpus,
  scored against ``labels.jsonl.gz``: labelled duplicate groups left with exactly one member, removed
  documents that have no partner with true word-5-gram Jaccard >= 0.5 (brute force over the corpus),
  natural near-duplicates removed, planted evaluation examples removed; plus a threshold sweep.
- ``bruteforce``: on the first 10,000 documents, every pair with word-5-gram Jaccard >= 0.8 (exact, by
  sparse matrix products) against the pairs minhash_dedup links: pairwise precision and recall.
- ``speed``: minhash_dedup's prepare against datasketch (MinHash.update_batch + MinHashLSH, same
  num_perm, word 5-grams, threshold) on the same Parquet shards, each in its own process; wall time and
  peak resident memory (``ru_maxrss`` of the child), and the ratios.
- ``scaling``: the same at 1x, 2x and 4x the corpus (copies with letters rotated, so they are new text
  with the same duplicate structure).

Usage: ``python benchmarks/dedup.py [--data ../shared/data] [--only speed,scaling] [--workers 2]``.
Timings on a shared machine are noisy; the ratios come from runs made back to back.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import string
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
NUM_PERM, NGRAM = 128, 5


# ------------------------------------------------------------------------------------------ data


def load_corpus(data: Path) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    with gzip.open(data / "corpus" / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    with gzip.open(data / "corpus" / "labels.jsonl.gz", "rt", encoding="utf-8") as f:
        labels = [json.loads(line) for line in f]
    return docs, labels


def write_shards(ids: list[str], texts: list[str], folder: Path, shard_size: int = 5000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, start in enumerate(range(0, len(texts), shard_size)):
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(pa.table({"id": ids[start:start + shard_size], "text": texts[start:start + shard_size]}), path,
                       compression="zstd")
        files.append(path)
    return files


def rotated(text: str, k: int) -> str:
    """Letters rotated by k: a new text with the same length, word structure and duplicates."""
    lo, up = string.ascii_lowercase, string.ascii_uppercase
    table = str.maketrans(lo + up, lo[k:] + lo[:k] + up[k:] + up[:k])
    return text.translate(table)


# ------------------------------------------------------------------------------------------ true Jaccard


def shingle_matrix(texts: list[str]):
    """Binary (documents x distinct word 5-grams) CSR matrix, tokens as gristmill defines them."""
    import scipy.sparse as sp

    from gristmill.data.dedup.text import batches_by_bytes, ngram_hashes, tokenize_batch

    arr = pa.array(texts, pa.large_string())
    lengths = np.array([len(t.encode("utf-8", "surrogatepass")) for t in texts])
    rows, cols = [], []
    for lo, hi in batches_by_bytes(lengths, 1 << 22):
        ng = ngram_hashes(tokenize_batch(arr.slice(lo, hi - lo)), NGRAM)
        pair = np.unique(np.stack([ng.doc.astype(np.uint64) + np.uint64(lo), ng.hashes], axis=1), axis=0)
        rows.append(pair[:, 0].astype(np.int64))
        cols.append(pair[:, 1])
    r = np.concatenate(rows)
    uniq, c = np.unique(np.concatenate(cols), return_inverse=True)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(texts), len(uniq)))


def max_partner_jaccard(x, group: np.ndarray, top: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For every row: the highest Jaccard with any other row, and with any row outside its own ``group``.

    Rows with identical shingle sets are collapsed first (copies of licence files would otherwise
    dominate the sparse products); the best ``top`` partners of each distinct set are kept to find the
    best one outside the row's group.
    """
    n = x.shape[0]
    sizes = np.asarray(x.sum(axis=1)).ravel()
    rep_of = np.empty(n, np.int64)
    first: dict[bytes, int] = {}
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        key = x.indices[x.indptr[i]:x.indptr[i + 1]].tobytes()
        r = first.setdefault(key, i) if sizes[i] > 0 else i
        rep_of[i] = r
        members[r].append(i)
    reps = np.array(sorted(members))
    rep_index = {r: k for k, r in enumerate(reps.tolist())}
    xr = x[reps]
    xt = xr.T.tocsc()
    sr = sizes[reps]
    partners: list[list[tuple[float, int]]] = [[] for _ in reps]
    for lo in range(0, len(reps), 2000):
        inter = (xr[lo:lo + 2000] @ xt).tocoo()
        i, j, v = inter.row + lo, inter.col, inter.data
        keep = i != j
        i, j, v = i[keep], j[keep], v[keep]
        jac = v / (sr[i] + sr[j] - v)
        order = np.lexsort((-jac, i))
        i, j, jac = i[order], j[order], jac[order]
        starts = np.flatnonzero(np.concatenate(([True], i[1:] != i[:-1])))
        for a, b in zip(starts.tolist(), np.append(starts[1:], len(i)).tolist()):
            partners[i[a]] = list(zip(jac[a:min(b, a + top)].tolist(), j[a:min(b, a + top)].tolist()))
    best_any = np.zeros(n)
    best_other = np.zeros(n)
    for d in range(n):
        k = rep_index[rep_of[d]]
        same = members[rep_of[d]]
        if len(same) > 1:
            best_any[d] = 1.0
            if any(group[m] != group[d] for m in same):
                best_other[d] = 1.0
                continue
        for jac, other in partners[k]:
            best_any[d] = max(best_any[d], jac)
            if any(group[m] != group[d] for m in members[int(reps[other])]):
                best_other[d] = max(best_other[d], jac)
                break
    return best_any, best_other


def true_pairs(x, threshold: float) -> set[tuple[int, int]]:
    sizes = np.asarray(x.sum(axis=1)).ravel()
    xt = x.T.tocsc()
    out: set[tuple[int, int]] = set()
    for lo in range(0, x.shape[0], 2000):
        inter = (x[lo:lo + 2000] @ xt).tocoo()
        i, j, v = inter.row + lo, inter.col, inter.data
        keep = i < j
        i, j, v = i[keep], j[keep], v[keep]
        jac = v / (sizes[i] + sizes[j] - v)
        sel = jac >= threshold
        out.update(zip(i[sel].tolist(), j[sel].tolist()))
    return out


# ------------------------------------------------------------------------------------------ pipeline runs


def run_recipe(steps: list[tuple[str, dict[str, Any]]], inputs: list[str], out: Path, workers: int) -> tuple[Any, float]:
    from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step

    pipe = Pipeline(InputSpec(paths=inputs), [build_step(n, p) for n, p in steps], OutputSpec(str(out)))
    t0 = time.perf_counter()
    result = pipe.run(workers=workers, progress=False, overwrite=True)
    return result, time.perf_counter() - t0


def rejected_reasons(out: Path) -> dict[str, tuple[str, str]]:
    from gristmill.data.readers.output import read_documents

    return {d.id: (d.reason or "", d.detail or "") for d in read_documents(out / "rejected")}


def score_groups(labels: list[dict[str, Any]], rejected: dict[str, tuple[str, str]], best: np.ndarray,
                 index: dict[str, int], x) -> dict[str, Any]:
    groups: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    for lab in labels:
        if lab["dup_of"]:
            groups[lab["dup_of"]] |= {lab["id"], lab["dup_of"]}
            kinds[lab["dup_of"]] |= set(lab["defects"]) & {"exact_duplicate", "near_duplicate"}

    def dedup_removed(i: str) -> bool:
        return i in rejected and rejected[i][0].split(":")[0].endswith("_dedup")

    out: dict[str, Any] = {}
    for kind, members in (("exact", [g for g, k in kinds.items() if k == {"exact_duplicate"}]),
                          ("near", [g for g, k in kinds.items() if "near_duplicate" in k])):
        one = zero = zero_natural = many = 0
        for g in members:
            alive = sum(not dedup_removed(m) for m in groups[g])
            if alive == 1:
                one += 1
            elif alive >= 2:
                many += 1
            else:
                zero += 1
                kept_for = {rejected[m][0].split("=", 1)[1] for m in groups[g] if "=" in rejected[m][0]}
                sims = [jaccard_rows(x, index[k], index[m]) for k in kept_for if k in index for m in groups[g]]
                zero_natural += bool(sims) and max(sims) >= 0.5
        out[kind] = {"groups": len(members), "exactly_one": one, "none_merged_natural": zero_natural,
                     "none_other": zero - zero_natural, "two_or_more": many}
    return out


def jaccard_rows(x, a: int, b: int) -> float:
    ra = set(x.indices[x.indptr[a]:x.indptr[a + 1]].tolist())
    rb = set(x.indices[x.indptr[b]:x.indptr[b + 1]].tolist())
    return len(ra & rb) / max(1, len(ra | rb))


def accuracy(args: argparse.Namespace, work: Path) -> None:
    docs, labels = load_corpus(args.data)
    ids = [d["id"] for d in docs]
    index = {d: i for i, d in enumerate(ids)}
    t0 = time.perf_counter()
    x = shingle_matrix([d["text"] for d in docs])
    group = np.arange(len(docs))
    for lab in labels:
        if lab["dup_of"]:
            group[index[lab["id"]]] = index[lab["dup_of"]]
    best, natural = max_partner_jaccard(x, group)
    print(f"\n(brute-force partner Jaccard over {len(docs):,} documents: {time.perf_counter() - t0:.0f} s)")
    eval_file = str(args.data / "tasks" / "fortunes" / "dev.jsonl")
    corpus = str(args.data / "corpus" / "docs.jsonl.gz")
    clean = np.array([not lab["defects"] for lab in labels])
    planted = {lab["id"] for lab in labels if "contamination" in lab["defects"]}
    no_partner = best < 0.5
    print(f"\n## Accuracy on {len(docs):,} documents (word 5-grams, num_perm {NUM_PERM}, workers {args.workers})\n")
    has_natural = natural >= 0.5
    print(f"Clean documents with a natural near-duplicate (a partner outside their labelled group with Jaccard "
          f">= 0.5): {int((clean & has_natural).sum()):,} of {int(clean.sum()):,} "
          f"({(clean & has_natural).sum() / clean.sum():.1%}); documents without any partner >= 0.5: "
          f"{int(no_partner.sum()):,}.\n")
    print("| threshold | exact groups: one kept | near groups: one kept | near: none kept (merged with natural near-dup) "
          "| near: 2+ kept | removed w/o partner >= 0.5 (rate) | clean natural near-dups removed | dedup s |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for threshold in args.thresholds:
        steps = [("noop", {}), ("exact_dedup", {}), ("minhash_dedup", {"threshold": threshold})]
        if threshold == args.thresholds[0]:
            steps.append(("decontaminate", {"paths": [eval_file]}))
        out = work / f"acc-{threshold}"
        result, seconds = run_recipe(steps, [corpus], out, args.workers)
        rejected = rejected_reasons(out)
        g = score_groups(labels, rejected, best, index, x)
        removed = np.zeros(len(docs), bool)
        for i, (reason, _) in rejected.items():
            if reason.split(":")[0].endswith("_dedup"):
                removed[index[i]] = True
        false_removals = int((removed & no_partner).sum())
        natural_removed = int((removed & clean & has_natural).sum())
        e, n = g["exact"], g["near"]
        print(f"| {threshold} | {e['exactly_one']}/{e['groups']} ({e['exactly_one'] / e['groups']:.1%}; "
              f"{e['none_merged_natural']} merged with a natural near-dup, {e['none_other']} chained, "
              f"{e['two_or_more']} with 2+) | {n['exactly_one']}/{n['groups']} "
              f"({n['exactly_one'] / n['groups']:.1%}) | {n['none_merged_natural']} (+{n['none_other']} other) "
              f"| {n['two_or_more']} | {false_removals} ({false_removals / no_partner.sum():.2%}) | {natural_removed:,} "
              f"| {seconds:.1f} |")
        summary[threshold] = (result, rejected, g)
    result, rejected, g = summary[args.thresholds[0]]
    decon = {i for i, (r, _) in rejected.items() if r.startswith("decontaminate:")}
    by_dedup = {i for i in planted - decon if i in rejected}
    n = g["near"]
    print(f"\nAt threshold {args.thresholds[0]}: near-duplicate groups resolved (exactly one kept, or merged into a "
          f"natural near-duplicate cluster): {n['exactly_one'] + n['none_merged_natural']}/{n['groups']} "
          f"({(n['exactly_one'] + n['none_merged_natural']) / n['groups']:.1%}); exact groups with 2+ kept: "
          f"{g['exact']['two_or_more']}.")
    print(f"Contamination ({eval_file}): {len(planted & decon)}/{len(planted)} planted documents removed by "
          f"decontaminate ({len(planted & decon) / len(planted):.1%}), {len(by_dedup)} more removed earlier as "
          f"duplicates, {len(planted) - len(planted & decon) - len(by_dedup)} missed; {len(decon - planted)} other "
          f"documents removed by decontaminate.")
    print(f"Pipeline totals: {result.docs_in:,} in, {result.kept:,} kept, {result.rejected:,} rejected.")


# ------------------------------------------------------------------------------------------ brute force


def bruteforce(args: argparse.Namespace, work: Path) -> None:
    from gristmill.data.dedup.minhash import MinHashDedup
    from gristmill.data.dedup.shuffle import connected_components, split_position
    from gristmill.data.executors.local import LocalExecutor

    docs, _ = load_corpus(args.data)
    docs = docs[: args.subset]
    texts = [d["text"] for d in docs]
    t0 = time.perf_counter()
    truth = true_pairs(shingle_matrix(texts), 0.8)
    t_brute = time.perf_counter() - t0
    files = write_shards([d["id"] for d in docs], texts, work / "subset", 5000)
    out = work / "subset-minhash"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    counters = MinHashDedup(threshold=0.8).prepare(files, out, LocalExecutor(1))
    t_mh = time.perf_counter() - t0
    edges = np.load(out / "edges.npy")
    shard, row = split_position(edges.reshape(-1))
    idx = (shard * 5000 + row).reshape(-1, 2)
    linked = {(min(a, b), max(a, b)) for a, b in idx.tolist()}
    nodes, roots = connected_components(edges)
    ns, nr = split_position(nodes)
    members: dict[int, list[int]] = defaultdict(list)
    for node, root in zip((ns * 5000 + nr).tolist(), roots.tolist()):
        members[root].append(node)
    clustered = {(a, b) for m in members.values() for i, a in enumerate(sorted(m)) for b in sorted(m)[i + 1:]}
    print(f"\n## Pairwise precision and recall, first {len(docs):,} documents, threshold 0.8\n")
    print(f"True pairs (word-5-gram Jaccard >= 0.8, brute force in {t_brute:.0f} s): {len(truth):,}. "
          f"minhash_dedup (bands x rows {counters['bands']} x {counters['rows']}, verify on) in {t_mh:.1f} s: "
          f"{counters['candidate_pairs']:,} candidate pairs, {len(linked):,} verified.\n")
    print("| pairs | predicted | true positives | precision | recall |")
    print("|---|---|---|---|---|")
    for name, pred in (("verified candidate pairs", linked), ("same cluster (after union-find)", clustered)):
        tp = len(pred & truth)
        print(f"| {name} | {len(pred):,} | {tp:,} | {tp / max(1, len(pred)):.3f} | {tp / max(1, len(truth)):.3f} |")


# ------------------------------------------------------------------------------------------ speed


def worker_gristmill(shards: Path, threshold: float) -> dict[str, Any]:
    from gristmill.data.dedup.minhash import MinHashDedup
    from gristmill.data.executors.local import LocalExecutor

    files = sorted(shards.glob("part-*.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        counters = MinHashDedup(threshold=threshold, num_perm=NUM_PERM, ngram=NGRAM).prepare(files, Path(tmp), LocalExecutor(1))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "removed": counters["duplicates"]}


def worker_datasketch(shards: Path, threshold: float) -> dict[str, Any]:
    """The usual datasketch recipe: one MinHash per document, query the LSH, then insert; union-find."""
    from datasketch import MinHash, MinHashLSH

    words = re.compile(r"\w+")
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(k: tuple[int, int]) -> tuple[int, int]:
        while parent.get(k, k) != k:
            parent[k] = parent.get(parent[k], parent[k])
            k = parent[k]
        return k

    for s, path in enumerate(sorted(shards.glob("part-*.parquet"))):
        pf = pq.ParquetFile(path)
        row = 0
        for batch in pf.iter_batches(batch_size=1000, columns=["text"]):
            for text in batch.column(0).to_pylist():
                w = words.findall((text or "").lower())
                shingles = [" ".join(w[i:i + NGRAM]).encode() for i in range(max(1, len(w) - NGRAM + 1))] if w else []
                m = MinHash(num_perm=NUM_PERM)
                m.update_batch(shingles)
                key = (s, row)
                if shingles:
                    for other in lsh.query(m):
                        a, b = find(other), find(key)
                        if a != b:
                            parent[max(a, b)] = min(a, b)
                    lsh.insert(key, m)
                row += 1
    removed = sum(1 for k in parent if find(k) != k)
    return {"seconds": time.perf_counter() - t0, "removed": removed}


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM belongs to the current program image only; ru_maxrss
    would also count the pages of the (large) parent this process was forked from before exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(side: str, shards: Path, threshold: float) -> dict[str, Any]:
    """Run one side in a fresh process; wall time of the work, whole process time and peak memory."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--shards", str(shards),
           "--threshold", str(threshold)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode:
        raise RuntimeError(f"{side} worker failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - t0
    return out


def speed(args: argparse.Namespace, work: Path) -> None:
    docs, _ = load_corpus(args.data)
    shards = work / "speed"
    write_shards([d["id"] for d in docs], [d["text"] for d in docs], shards)
    print(f"\n## Speed and memory against datasketch: {len(docs):,} documents, threshold {args.speed_threshold}, "
          f"num_perm {NUM_PERM}, word {NGRAM}-grams, one process each\n")
    g = measure("gristmill", shards, args.speed_threshold)
    d = measure("datasketch", shards, args.speed_threshold)
    print("| | work s | process s | peak RSS MiB | documents removed |")
    print("|---|---|---|---|---|")
    for name, r in (("gristmill minhash_dedup (prepare, 1 worker)", g), ("datasketch MinHash + MinHashLSH", d)):
        print(f"| {name} | {r['seconds']:.2f} | {r['process_seconds']:.2f} | {r['peak_mib']:.0f} | {r['removed']:,} |")
    print(f"\nRatio: gristmill is {d['seconds'] / g['seconds']:.1f}x faster (work), "
          f"{d['process_seconds'] / g['process_seconds']:.1f}x (whole process), and uses "
          f"{d['peak_mib'] / g['peak_mib']:.2f}x less peak memory.")
    corpus = str(args.data / "corpus" / "docs.jsonl.gz")
    result, seconds = run_recipe([("noop", {}), ("minhash_dedup", {"threshold": args.speed_threshold})], [corpus],
                                 work / "speed-run", 1)
    print(f"Whole gristmill run (read JSONL, noop stage, minhash_dedup prepare and apply, write kept/rejected), "
          f"1 worker: {seconds:.1f} s for {result.docs_in:,} documents.")


def scaling(args: argparse.Namespace, work: Path) -> None:
    docs, _ = load_corpus(args.data)
    print(f"\n## Scaling (threshold {args.speed_threshold}, one process, 1 worker)\n")
    print("| size | documents | gristmill s | gristmill peak MiB | datasketch s | datasketch peak MiB |")
    print("|---|---|---|---|---|---|")
    for factor in (1, 2, 4):
        ids, texts = [], []
        for k in range(factor):
            ids += [f"{d['id']}-{k}" for d in docs]
            texts += [rotated(d["text"], k) if k else d["text"] for d in docs]
        shards = work / f"scale-{factor}"
        write_shards(ids, texts, shards)
        g = measure("gristmill", shards, args.speed_threshold)
        d = measure("datasketch", shards, args.speed_threshold) if args.peer_scaling else None
        ds = f"{d['seconds']:.1f} | {d['peak_mib']:.0f}" if d else "- | -"
        print(f"| {factor}x | {len(texts):,} | {g['seconds']:.1f} | {g['peak_mib']:.0f} | {ds} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", default="accuracy,bruteforce,speed,scaling")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    ap.add_argument("--speed-threshold", type=float, default=0.8)
    ap.add_argument("--subset", type=int, default=10_000)
    ap.add_argument("--no-peer-scaling", dest="peer_scaling", action="store_false")
    ap.add_argument("--worker", choices=["gristmill", "datasketch"], help=argparse.SUPPRESS)
    ap.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threshold", type=float, default=0.8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        fn = worker_gristmill if args.worker == "gristmill" else worker_datasketch
        result = fn(args.shards, args.threshold)
        result["peak_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return
    if not (args.data / "corpus" / "docs.jsonl.gz").exists():
        sys.exit(f"no corpus at {args.data}; pass --data")
    sections = {"accuracy": accuracy, "bruteforce": bruteforce, "speed": speed, "scaling": scaling}
    with tempfile.TemporaryDirectory(prefix="gristmill-dedup-bench-") as tmp:
        for name in args.only.split(","):
            sections[name](args, Path(tmp))


if __name__ == "__main__":
    main()
