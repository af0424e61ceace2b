"""The corpus refinery: read raw text, clean and filter it, deduplicate it, and write what was kept and
what was rejected (with the reason) so nothing is ever silently lost.

Python use mirrors the recipe file::

    from gristmill.data import Pipeline, InputSpec, OutputSpec, build_step
    pipe = Pipeline(InputSpec(paths=["docs.jsonl.gz"]), [build_step("normalize", {})], OutputSpec("out/run1"))
    result = pipe.run(workers=2)
"""

from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.pipeline import CorpusStep, Filter, Step, StepStats, register
from gristmill.data.readers.output import read_documents, read_texts
from gristmill.data.recipe import RecipeError, build_step, load_recipe, parse_recipe
from gristmill.data.run import OutputSpec, Pipeline, RunError, RunResult

__all__ = [
    "CorpusStep", "Document", "Filter", "InputSpec", "OutputSpec", "Pipeline", "RecipeError", "RunError",
    "RunResult", "Step", "StepStats", "build_step", "load_recipe", "parse_recipe", "read_documents",
    "read_texts", "register",
]
