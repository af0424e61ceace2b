import pytest

from gristmill.data import RecipeError, parse_recipe

BASE = "input: {paths: [x.jsonl]}\noutput: {path: out}\n"


def _err(text: str) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, "r.yaml")
    return str(info.value)


def test_valid_recipe_builds_steps() -> None:
    pipe = parse_recipe(BASE + "steps:\n  - noop\n  - length: {min_chars: 5}\n")
    assert [s.name for s in pipe.steps] == ["noop", "length"]
    assert pipe.steps[1].min_chars == 5 and pipe.output.format == "parquet"


def test_unknown_step_names_its_line() -> None:
    msg = _err(BASE + "steps:\n  - noop\n  - no_such_step\n")
    assert "r.yaml line 5" in msg and "no_such_step" in msg


def test_wrong_parameter_type_and_name() -> None:
    assert "expects int" in _err(BASE + "steps:\n  - length: {min_chars: many}\n")
    msg = _err(BASE + "steps:\n  - length: {min_words: 3}\n")
    assert "line 4" in msg and "min_words" in msg and "min_chars" in msg


def test_bad_sections() -> None:
    assert "missing section 'steps'" in _err(BASE)
    assert "unknown section" in _err(BASE + "steps: [noop]\nextra: 1\n")
    assert "input.format" in _err("input: {paths: [x], format: csv}\noutput: {path: o}\nsteps: [noop]\n")
    assert "has no field" in _err("input: {paths: [x], txt_field: a}\noutput: {path: o}\nsteps: [noop]\n")


def test_user_step_by_dotted_path() -> None:
    pipe = parse_recipe(BASE + "steps:\n  - tests.data.step_fixtures:Sleepy: {seconds: 0.0}\n")
    assert pipe.steps[0].seconds == 0.0
    assert "cannot import" in _err(BASE + "steps:\n  - nowhere.module:Thing\n")
