"""What each cleaning stage buys, at equal compute: ``gristmill ablate`` on the shared corpus and fortunes.

``ablate``: writes ``benchmarks/ablate.yaml`` with the shared data's real location to ``WORKDIR/spec.yaml``
and runs ``gristmill ablate`` on it (always with ``--resume``: rerun the same command after a kill),
niced and with one torch thread, logging to ``WORKDIR/ablate.log``.

``rescore``: the cheap re-decision. Runs the per-document filters of ``recipes/web-en.yaml`` with
``annotate: true`` over the shared corpus once, then for a changed threshold compares
``gristmill rescore`` (re-decides from the stored scores) with a fresh ``gristmill run`` of the
changed recipe: wall-clock and CPU seconds of both, and whether kept and rejected are identical.

Usage::

    python benchmarks/ablate.py ablate --workdir /tmp/gm_ablate
    python benchmarks/ablate.py rescore --workdir /tmp/gm_rescore

The machine is shared (2 cores, 8 engineers): wall-clock is noisy, CPU seconds less so.
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
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def shared_dir(given: str | None) -> Path:
    for candidate in ([Path(given)] if given else []) + [ROOT.parent / "shared", Path("/work/shared")]:
        if (candidate / "data" / "corpus").is_dir():
            return candidate
    raise SystemExit("cannot find the shared data; pass --shared")


def timed(command: list[str], log: Path | None = None) -> dict[str, float]:
    """Run ``command`` (niced, from the repository root); wall-clock and CPU seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    print("$ " + " ".join(command), flush=True)
    with (log.open("a") if log else open(os.devnull, "w")) as out:
        subprocess.run(["nice", "-n", "5", *command], cwd=ROOT, check=True, env=env,
                       stdout=out if log else None, stderr=subprocess.STDOUT if log else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": round(time.perf_counter() - start, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)}


def run_ablate(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shared = shared_dir(args.shared)
    spec = (ROOT / "benchmarks" / "ablate.yaml").read_text().replace("../shared/", f"{shared}/")
    (work / "spec.yaml").write_text(spec)
    out = work / "abl"
    cost = timed([sys.executable, "-m", "gristmill", "ablate", str(work / "spec.yaml"), "--out", str(out),
                  "--threads", "1", "--no-progress", *(["--resume"] if out.exists() else [])], work / "ablate.log")
    print(json.dumps(cost), f"-> {out / 'summary.md'}")


def rescore_recipe(shared: Path, work: Path, min_words: int | None, annotate: bool) -> Path:
    """web-en's per-document filters over the shared corpus; ``min_words`` changes gopher_quality's."""
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "web-en.yaml").read_text())
    from gristmill.data.pipeline import CorpusStep
    from gristmill.data.recipe import resolve_step_class

    steps: list[Any] = []
    for item in recipe["steps"]:
        name, params = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        if issubclass(resolve_step_class(name), CorpusStep):
            continue
        params = dict(params or {})
        if name == "gopher_quality" and min_words is not None:
            params["min_words"] = min_words
        if annotate and "annotate" in {f for f in resolve_step_class(name).__dataclass_fields__}:
            params["annotate"] = True
        steps.append({name: params} if params else name)
    recipe["steps"] = steps
    recipe["input"]["paths"] = [str(shared / "data" / "corpus" / "docs.jsonl.gz")]
    path = work / f"filters-{min_words or 'default'}{'-annotated' if annotate else ''}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_rescore(args: argparse.Namespace) -> None:
    from gristmill.data.rescore import compare_outputs

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shared = shared_dir(args.shared)
    gm = [sys.executable, "-m", "gristmill"]
    base = rescore_recipe(shared, work, None, annotate=True)
    results: dict[str, Any] = {}
    results["annotated run (once)"] = timed([*gm, "run", str(base), "-o", str(work / "annotated"), "--overwrite",
                                             "--no-progress"])
    for value in args.min_words:
        fresh = rescore_recipe(shared, work, value, annotate=True)
        results[f"fresh run, min_words={value}"] = timed([*gm, "run", str(fresh), "-o", str(work / f"fresh-{value}"),
                                                          "--overwrite", "--no-progress"])
        results[f"rescore, min_words={value}"] = timed([*gm, "rescore", str(work / "annotated"), "--set",
                                                        f"gopher_quality.min_words={value}", "--out",
                                                        str(work / f"rescored-{value}"), "--overwrite"])
        results[f"identical, min_words={value}"] = compare_outputs(work / f"fresh-{value}", work / f"rescored-{value}")
    print(json.dumps(results, indent=2))
    (work / "rescore.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("ablate", "rescore"):
        p = sub.add_parser(name)
        p.add_argument("--workdir", required=True)
        p.add_argument("--shared", default=None)
        if name == "rescore":
            p.add_argument("--min-words", type=int, nargs="+", default=[30, 80])
    args = parser.parse_args()
    (run_ablate if args.what == "ablate" else run_rescore)(args)


if __name__ == "__main__":
    main()
