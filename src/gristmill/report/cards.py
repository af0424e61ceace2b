"""The dataset card: ``OUT/README.md`` for a cleaned corpus (the model card is ``serve.model_card``).

The dataset card's YAML header has a ``configs:`` block (``kept`` as the default config, ``rejected``
as a second one), which is what lets ``datasets.load_dataset(OUT)`` read the folder; its body gives
the recipe, the counts and where the report is. The licence is left for the user: gristmill cannot
know the licence of the input text.

Both cards share the YAML front matter of :mod:`gristmill.serve.model_card`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from gristmill.data import storage
from gristmill.data.readers.output import output_files
from gristmill.data.storage import atomic_write_text
from gristmill.serve.model_card import front_matter


def dataset_configs(out: str) -> list[dict[str, Any]]:
    """One config per non-empty folder: ``default`` (kept) first, then ``rejected``."""
    configs = []
    for name, folder in (("default", "kept"), ("rejected", "rejected")):
        files = output_files(storage.join(out, folder))
        if not files:
            continue
        ext = "parquet" if all(f.endswith(".parquet") for f in files) else "jsonl"
        configs.append({"config_name": name, "data_files": [{"split": "train", "path": f"{folder}/*.{ext}"}]})
    if configs and configs[0]["config_name"] != "default":
        # Everything was rejected: datasets still needs a default, so the rejected documents are it.
        configs[0] = {**configs[0], "config_name": "default"}
    return configs


def dataset_card(out: str, stats: dict[str, Any]) -> str:
    t = stats["totals"]
    configs = dataset_configs(out)
    meta: dict[str, Any] = {"pretty_name": f"gristmill corpus {storage.name(out)}", "tags": ["gristmill", "text"]}
    if configs:
        meta["configs"] = configs
    steps = [{s["name"]: s.get("params", {})} for s in stats.get("steps", [])]
    recipe = yaml.safe_dump({"input": {"paths": stats["input"].get("paths", [])}, "steps": steps},
                            sort_keys=False, allow_unicode=True)
    rejected_config = any(c["data_files"][0]["path"].startswith("rejected/") for c in configs)
    kept_config = any(c["data_files"][0]["path"].startswith("kept/") for c in configs)
    load = []
    if kept_config:
        load.append('kept = load_dataset("PATH/TO/THIS/FOLDER", split="train")')
    if rejected_config:
        name = "rejected" if kept_config else "default"
        load.append(f'rejected = load_dataset("PATH/TO/THIS/FOLDER", "{name}", split="train")  # with reason, detail')
    prov = stats.get("provenance") or {}
    lines = [
        front_matter(meta),
        f"# {storage.name(out)}: a corpus cleaned by gristmill", "",
        f"{t['docs_in']:,} input documents: **{t['kept']:,} kept**, {t['rejected']:,} rejected "
        f"({100 * t['kept'] / t['docs_in'] if t['docs_in'] else 0:.1f}% kept). Every input document is in exactly "
        "one of `kept/` and `rejected/`; a rejected one carries `reason` (`step:rule`) and `detail`.", "",
        "## Load it", "", "```python", "from datasets import load_dataset", *load, "```", "",
        "## Licence", "",
        "Not set: the licence of this data is the licence of its input text. Set `license:` in the header above.", "",
        "## How it was made", "",
        "`report.html` in this folder shows the funnel, the rejections with examples, lengths, languages, "
        "duplicates and PII replacements; `stats.json` has every count.", "",
        "Recipe (input and steps with their parameters):", "", "```yaml", recipe.rstrip(), "```", "",
    ]
    if prov:
        lines += [f"Made with gristmill {prov.get('gristmill')} (commit {prov.get('git_commit') or 'unknown'}): "
                  f"`{' '.join(prov.get('command', []))}`", ""]
    reasons: dict[str, int] = dict(stats["input"].get("rejected", {}))
    for step in stats.get("steps", []):
        reasons.update(step.get("rejected", {}))
    if reasons:
        lines += ["## Rejections", "", "| reason | documents |", "|---|---|"]
        lines += [f"| {r} | {n:,} |" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        lines.append("")
    lines += ["## Limits", "",
              "Filters are heuristics: some good documents are rejected and some bad ones kept (see the examples in "
              "`report.html`). The corpus keeps the biases of its sources; `gristmill bias` measures some of them.", ""]
    return "\n".join(lines)


def write_dataset_card(out: str) -> str:
    stats = json.loads(storage.read_bytes(storage.join(out, "stats.json")))
    path = storage.join(out, "README.md")
    atomic_write_text(path, dataset_card(out, stats))
    return path
