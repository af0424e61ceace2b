"""HTML -> text extraction: resiliparse against trafilatura on the shared real HTML pages.

Speed: pages/s of each extractor over all 650 pages of ``shared/data/web/pages.jsonl.gz``.
Quality: the shared corpus holds the clean main text of many of those pages (``pydoc``/``debref``
documents, split by section, with the page URL). For every page with such reference text we compare
bags of words: recall = share of reference words the extractor found; precision = share of extracted
words found in the reference (a lower bound, since not every section of a page is in the corpus).

    python benchmarks/extract.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter, defaultdict

from gristmill.data.readers.html import html_extractor

WORD = re.compile(r"\w+", re.UNICODE)


def bag(text: str) -> Counter:
    return Counter(w.lower() for w in WORD.findall(text))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    pages = [json.loads(line) for line in gzip.open(f"{args.data}/web/pages.jsonl.gz", "rt")]
    docs = gzip.open(f"{args.data}/corpus/docs.jsonl.gz", "rt")
    labels = gzip.open(f"{args.data}/corpus/labels.jsonl.gz", "rt")
    reference: dict[str, list[str]] = defaultdict(list)
    for d_line, l_line in zip(docs, labels):
        d, lab = json.loads(d_line), json.loads(l_line)
        if d["source"] in ("pydoc", "debref") and not lab["defects"]:
            reference[d["url"].split("#")[0].split("?")[0]].append(d["text"])
    print(f"{len(pages)} pages, {sum(1 for p in pages if p['url'] in reference)} with reference main text")
    rows = []
    for name in ("resiliparse", "trafilatura"):
        extract = html_extractor(name)
        t0 = time.perf_counter()
        texts = [extract(p["html"]) for p in pages]
        seconds = time.perf_counter() - t0
        rec_num = rec_den = prec_num = prec_den = 0
        empty = sum(1 for t in texts if not t.strip())
        for page, text in zip(pages, texts):
            if page["url"] not in reference:
                continue
            ref, got = bag("\n".join(reference[page["url"]])), bag(text)
            overlap = sum((ref & got).values())
            rec_num += overlap
            rec_den += sum(ref.values())
            prec_num += overlap
            prec_den += sum(got.values())
        rows.append((name, len(pages) / seconds, rec_num / rec_den, prec_num / max(prec_den, 1), empty))
    print(f"{'extractor':<12} {'pages/s':>9} {'recall':>8} {'precision>=':>12} {'empty':>6}")
    for name, pps, rec, prec, empty in rows:
        print(f"{name:<12} {pps:>9.1f} {rec:>8.3f} {prec:>12.3f} {empty:>6}")
    print(f"speed ratio resiliparse/trafilatura: {rows[0][1] / rows[1][1]:.1f}x")


if __name__ == "__main__":
    main()
