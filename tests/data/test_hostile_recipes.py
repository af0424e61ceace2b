"""Principles 6 (YAML), 7 (recipe errors up front, one line, right line) and 11 (a recipe is code: user
steps only from an installed package, PYTHONPATH or an explicit file, never the current folder by accident)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gristmill.data.recipe import MAX_RECIPE_VALUES, RecipeError, parse_recipe
from tests.data.hostile import gristmill, invoke, one_line_error, write_jsonl

HEAD = "input: {paths: [in.jsonl]}\n"
TAIL = "output: {path: out}\n"

BOMB = """input: {paths: [in.jsonl]}
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
steps:
  - noop
output: {path: out}
"""


def test_yaml_alias_bomb_is_refused_at_once() -> None:
    with pytest.raises(RecipeError, match=f"more than {MAX_RECIPE_VALUES:,} values") as info:
        parse_recipe(BOMB, "bomb.yaml")
    assert "bomb.yaml line" in str(info.value)


def test_alias_bomb_inside_step_parameters_is_refused() -> None:
    text = (HEAD + "steps:\n  - length: {min_chars: 1}\n  - blocklist:\n      words: &w [a, b, c, d, e, f, g, h, i, j]\n"
            "      extra: " + "[" + ", ".join(["*w"] * 10) + "]\n" + TAIL)
    deep = text
    for _ in range(4):  # 10^5 words once expanded
        deep = deep.replace("      extra: [", "      x: &x" + "[" + ", ".join(["*w"] * 10) + "]\n      extra: [", 1)
    with pytest.raises(RecipeError):
        parse_recipe(deep, "r.yaml")


def test_recursive_alias_is_refused() -> None:
    text = HEAD + "steps:\n  - noop\nloop: &l [1, *l]\n" + TAIL
    with pytest.raises(RecipeError, match="refers to a value that contains it"):
        parse_recipe(text, "r.yaml")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch pwned']", "!!python/name:os.system",
                                 "!!python/object:collections.OrderedDict {}", "!custom value", "!!python/module:os ''"])
def test_python_and_custom_tags_are_refused_naming_their_line(tag: str) -> None:
    text = HEAD + "steps:\n  - noop\n  - length:\n      min_chars: " + tag + "\n" + TAIL
    with pytest.raises(RecipeError, match="r.yaml line 5: YAML tag .* is not allowed"):
        parse_recipe(text, "r.yaml")


def test_python_tag_on_the_command_line_is_one_line_and_runs_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [], n_good=3)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(HEAD + "steps:\n  - noop\n  - length:\n      min_chars: !!python/object/apply:os.system "
                      f"['touch {tmp_path / 'pwned'}']\n" + TAIL)
    proc = gristmill("run", recipe, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2 and "r.yaml line 5" in one_line_error(proc.stderr)
    assert not (tmp_path / "pwned").exists()


def test_oversized_and_deeply_nested_recipes_are_refused() -> None:
    with pytest.raises(RecipeError, match="at most"):
        parse_recipe(HEAD + "steps: [noop]\n" + TAIL + "#" * (2 << 20), "big.yaml")
    with pytest.raises(RecipeError):
        parse_recipe(HEAD + "steps: [noop]\n" + TAIL + "x: " + "[" * 20_000 + "]" * 20_000 + "\n", "deep.yaml")


@pytest.mark.parametrize("bad, where", [
    ("batch_size: 0\n", "batch_size"), ("batch_size: abc\n", "batch_size"), ("batch_size: -5\n", "batch_size"),
])
def test_sizes_must_be_positive(bad: str, where: str) -> None:
    with pytest.raises(RecipeError, match=where):
        parse_recipe(HEAD + bad + "steps: [noop]\n" + TAIL, "r.yaml")


@pytest.mark.parametrize("field", ["shard_size: 0", "max_doc_bytes: -1", "shard_size: 2.5"])
def test_input_sizes_must_be_positive(field: str) -> None:
    with pytest.raises(RecipeError, match="line 1"):
        parse_recipe(f"input: {{paths: [in.jsonl], {field}}}\nsteps: [noop]\n" + TAIL, "r.yaml")


@pytest.mark.parametrize("codes", [["eng"], ["en", "deu"], ["xx"], ["english"]])
def test_unknown_language_codes_are_refused_up_front(codes: list[str]) -> None:
    """languages: [eng] rejected 100% of the documents; now the recipe does not load."""
    text = HEAD + f"steps:\n  - noop\n  - language: {{languages: {codes}}}\n" + TAIL
    with pytest.raises(RecipeError, match="r.yaml line 4.*knows no"):
        parse_recipe(text.replace("'", ""), "r.yaml")


def test_known_language_codes_load() -> None:
    pipeline = parse_recipe(HEAD + "steps:\n  - language: {languages: [en, zh-cn, pt_BR, ceb]}\n" + TAIL, "r.yaml")
    (step,) = pipeline.steps
    assert step.languages == ["en", "zh-cn", "pt_BR", "ceb"]
    assert {"en", "zh", "pt", "ceb"} <= step._wanted


def test_unknown_language_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [], n_good=3)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(HEAD + "steps:\n  - language: {languages: [eng]}\n" + TAIL)
    code, output = invoke("run", recipe, "-o", tmp_path / "out", "--input", tmp_path / "in.jsonl", "--no-progress")
    assert code == 2 and "knows no 'eng'" in one_line_error(output)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- principle 11: where user steps come from

EVIL = '''
from pathlib import Path
from dataclasses import dataclass
Path(__file__).with_name("imported").write_text("the module ran")
from gristmill.data.pipeline import Filter

@dataclass
class Keep(Filter):
    def check(self, doc):
        return None
'''


def _user_step_setup(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "in.jsonl", [], n_good=3)
    (tmp_path / "evil.py").write_text(EVIL)
    return tmp_path


def test_a_step_module_in_the_current_folder_is_not_imported_by_accident(tmp_path: Path) -> None:
    folder = _user_step_setup(tmp_path)
    (folder / "r.yaml").write_text(HEAD + "steps:\n  - evil:Keep\n" + TAIL)
    proc = gristmill("run", "r.yaml", "--no-progress", cwd=folder)
    assert proc.returncode == 2 and "cannot import user step 'evil:Keep'" in one_line_error(proc.stderr)
    assert not (folder / "imported").exists()


def test_a_step_from_an_explicit_file_or_pythonpath_is_loaded(tmp_path: Path) -> None:
    folder = _user_step_setup(tmp_path)
    (folder / "r.yaml").write_text(HEAD + "steps:\n  - ./evil.py:Keep\n" + TAIL)
    proc = gristmill("run", "r.yaml", "--no-progress", "--workers", "2", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "imported").exists()
    (folder / "imported").unlink()
    (folder / "r2.yaml").write_text(HEAD + "steps:\n  - evil:Keep\noutput: {path: out2}\n")
    proc = gristmill("run", "r2.yaml", "--no-progress", cwd=folder, pythonpath=folder)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "imported").exists()


def test_recipe_loading_is_fast_even_when_hostile() -> None:
    """Not a timing assertion on the machine: the bomb is refused before anything is expanded, so the
    number of values visited is the number of YAML nodes (a few dozen), whatever the expansion."""
    start = time.process_time()
    with pytest.raises(RecipeError):
        parse_recipe(BOMB, "bomb.yaml")
    assert time.process_time() - start < 30  # generous: an expanded bomb would not finish at all
