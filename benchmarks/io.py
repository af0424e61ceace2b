"""Engine throughput with no filters: read JSONL.gz -> write Parquet, gristmill against datatrove.

Both read the same file and write Parquet with the same worker counts, in one run; the ratio is printed.
datatrove splits work by file, gristmill by record ranges, so with one input file datatrove's second
worker has nothing to do: that is part of what is measured.

    python benchmarks/io.py [--input ../shared/data/corpus/docs.jsonl.gz]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from gristmill.data import InputSpec, OutputSpec, Pipeline, build_step


def run_gristmill(path: str, out: str, workers: int) -> float:
    pipe = Pipeline(InputSpec(paths=[path]), [build_step("noop", {})], OutputSpec(out))
    t0 = time.perf_counter()
    result = pipe.run(workers=workers, overwrite=True, progress=False)
    assert result.docs_in == result.kept
    return time.perf_counter() - t0


def run_datatrove(path: str, out: str, workers: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import ParquetWriter

    folder, name = os.path.split(os.path.abspath(path))
    executor = LocalPipelineExecutor(
        pipeline=[JsonlReader(folder, glob_pattern=name), ParquetWriter(out)],
        tasks=workers, workers=workers, logging_dir=os.path.join(out, "_logs"))
    t0 = time.perf_counter()
    executor.run()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default="../shared/data/corpus/docs.jsonl.gz")
    args = ap.parse_args()
    import gzip

    with gzip.open(args.input, "rb") as f:
        raw = f.read()
    n_docs, mb = raw.count(b"\n"), len(raw) / 1e6
    print(f"input: {args.input}: {n_docs:,} documents, {mb:.1f} MB uncompressed")
    print(f"{'engine':<10} {'workers':>7} {'seconds':>8} {'docs/s':>9} {'MB/s':>7}")
    tmp = tempfile.mkdtemp()
    try:
        for workers in (1, 2):
            times = {}
            for name, fn in (("gristmill", run_gristmill), ("datatrove", run_datatrove)):
                out = os.path.join(tmp, f"{name}{workers}")
                try:
                    times[name] = fn(args.input, out, workers)
                except ImportError:
                    print(f"{name:<10} not installed (pip install datatrove orjson)")
                    continue
                print(f"{name:<10} {workers:>7} {times[name]:>8.2f} {n_docs / times[name]:>9,.0f} {mb / times[name]:>7.1f}")
            if len(times) == 2:
                print(f"ratio gristmill/datatrove at {workers} worker(s): {times['datatrove'] / times['gristmill']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
