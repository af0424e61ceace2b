"""The selection tests run recipes through the same fixture as the dedup tests."""

from tests.data.dedup.conftest import run_steps  # noqa: F401
