"""Build the man-page section task: which manual section (1, 2, 3, 5, 7, 8) a page belongs to.

Deterministic, standard library plus ``mandoc``: rerunning it on the same installed packages gives
byte-identical files. Frozen before any model was tuned on it (issue 20); its test split is scored
once, at the end.

Recipe:

1. list ``/usr/share/man/man{1,2,3,5,7,8}/*`` (English pages only; sections 4 and 6 have too few pages)
   that an installed package of Debian main owns (``/var/lib/dpkg/info/*.list``, and the package is in
   apt's bookworm ``main`` Packages lists; pages of third-party repositories, such as a vendor SDK,
   are left out), sorted, skipping symlinks and ``.so`` redirect stubs;
2. per section, draw at most ``--per-class`` files with ``random.Random(seed)``;
3. render each with ``mandoc -T utf8 -O width=80`` (as the shared corpus did), strip overstrike
   (backspace bold/underline), drop the header and footer lines (they print the section, e.g.
   ``LS(1)``), collapse white space and keep the first ``--words`` words;
4. drop empty and duplicate texts, then split each section 70/15/15 into train/dev/test.

The label is the section digit (``3ssl`` and ``3pm`` pages are section 3). Pages of one package can
land in different splits, as they would for a user classifying new pages of installed software.

Needs ``apt-get install mandoc manpages manpages-dev`` (plus whatever packages ship the pages;
``benchmarks/results/adapt.md`` records the counts and file hashes of the build that was measured).

Usage::

    python benchmarks/tasks/build_manpage_task.py --out /tmp/gm20/tasks/manpages
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import subprocess
from pathlib import Path

SECTIONS = ("1", "2", "3", "5", "7", "8")
OVERSTRIKE = re.compile(r".\x08")


def is_stub(path: Path) -> bool:
    """A symlink or a ``.so`` redirect to another page."""
    if path.is_symlink():
        return True
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(200)
    return head.lstrip().startswith(b".so ")


def render(path: Path, words: int) -> str:
    out = subprocess.run(["mandoc", "-T", "utf8", "-O", "width=80", str(path)], capture_output=True,
                         check=False).stdout.decode("utf-8", errors="replace")
    lines = [line for line in OVERSTRIKE.sub("", out).splitlines() if line.strip()]
    body = lines[1:-1]  # header and footer name the section
    return " ".join(" ".join(body).split()[:words])


def debian_main_packages(lists: Path) -> set[str]:
    """Names of the packages in apt's Debian ``main`` Packages lists (decompressed by apt itself)."""
    names: set[str] = set()
    for path in sorted(lists.glob("*debian*_main_binary-*_Packages*")):
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, check=True,
                              text=True).stdout
        names.update(line[9:].strip() for line in text.splitlines() if line.startswith("Package: "))
    return names


def debian_owned(dpkg_info: Path, allowed: set[str]) -> dict[str, str]:
    """Every file path an installed Debian main package lists -> that package."""
    owner: dict[str, str] = {}
    for listing in sorted(dpkg_info.glob("*.list")):
        package = listing.stem.split(":")[0]
        if package not in allowed:
            continue
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            owner.setdefault(line, package)
    return owner


def build(man_root: Path, per_class: int, words: int, seed: int,
          owner: dict[str, str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, int]]:
    rng = random.Random(seed)
    packages: dict[str, int] = {}
    splits: dict[str, list[dict[str, str]]] = {"train": [], "dev": [], "test": []}
    seen: set[str] = set()
    for section in SECTIONS:
        files = sorted(p for p in (man_root / f"man{section}").iterdir()
                       if str(p) in owner and p.is_file() and not is_stub(p))
        rng.shuffle(files)
        texts: list[str] = []
        for path in files:
            if len(texts) == per_class:
                break
            text = render(path, words)
            if len(text.split()) < 20 or text in seen:
                continue
            seen.add(text)
            texts.append(text)
            packages[owner[str(path)]] = packages.get(owner[str(path)], 0) + 1
        n_dev = n_test = round(len(texts) * 0.15)
        parts = {"test": texts[:n_test], "dev": texts[n_test:n_test + n_dev], "train": texts[n_test + n_dev:]}
        for split, items in parts.items():
            splits[split] += [{"text": t, "label": section} for t in items]
    for items in splits.values():
        random.Random(seed).shuffle(items)
    return splits, packages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--man-root", type=Path, default=Path("/usr/share/man"))
    parser.add_argument("--per-class", type=int, default=360)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--dpkg-info", type=Path, default=Path("/var/lib/dpkg/info"))
    parser.add_argument("--apt-lists", type=Path, default=Path("/var/lib/apt/lists"))
    args = parser.parse_args()
    splits, packages = build(args.man_root, args.per_class, args.words, args.seed, debian_owned(args.dpkg_info, debian_main_packages(args.apt_lists)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "packages.tsv").write_text("".join(f"{p}\t{n}\n" for p, n in sorted(packages.items())),
                                           encoding="utf-8")
    print(f"{len(packages)} packages; most pages: {sorted(packages.items(), key=lambda kv: -kv[1])[:8]}")
    for split, items in splits.items():
        data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode("utf-8")
        (args.out / f"{split}.jsonl").write_bytes(data)
        counts = {s: sum(1 for i in items if i["label"] == s) for s in SECTIONS}
        print(f"{split}: {len(items)} {counts} sha256 {hashlib.sha256(data).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
