"""The corpus refinery: read raw text, clean and filter it, deduplicate it, and write what was kept and
what was rejected (with the reason) so nothing is ever silently lost.

Python use mirrors the recipe file::

    from gristmill.data import Pipeline, InputSpec, OutputSpec, build_step
    pipe = Pipeline(InputSpec(paths=["docs.jsonl.gz"]), [build_step("normalize", {})], OutputSpec("out/run1"))
    result = pipe.run(workers=2)

The names below are imported on first use (``gristmill.lazy``), so importing a light module of this package
(``gristmill.data.storage``) or ``gristmill.cli`` loads no pyarrow.
"""

from gristmill.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "Document": "gristmill.data.document", "InputSpec": "gristmill.data.inputs",
    "CorpusStep": "gristmill.data.pipeline", "Filter": "gristmill.data.pipeline", "Step": "gristmill.data.pipeline",
    "StepStats": "gristmill.data.pipeline", "register": "gristmill.data.pipeline",
    "read_documents": "gristmill.data.readers.output", "read_texts": "gristmill.data.readers.output",
    "RecipeError": "gristmill.data.recipe", "build_step": "gristmill.data.recipe",
    "load_recipe": "gristmill.data.recipe", "parse_recipe": "gristmill.data.recipe",
    "OutputSpec": "gristmill.data.run", "Pipeline": "gristmill.data.run", "RunError": "gristmill.data.run",
    "RunResult": "gristmill.data.run",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
