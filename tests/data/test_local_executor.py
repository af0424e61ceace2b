"""The local executor's worker processes, as a script calling gristmill from Python meets them.

Workers start from a fork server (forking a caller that already runs pyarrow, tokenizers or torch threads once
crashed a worker), so, as with Python's spawn, each worker imports the script that was run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gristmill.data.executors import make_executor

pytestmark = pytest.mark.slow  # starts interpreters


def _run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _square(x: int) -> int:
    return x * x


def test_results_come_back_from_worker_processes() -> None:
    executor = make_executor("local", 2)
    try:
        assert sorted(executor.map(_square, range(10))) == [x * x for x in range(10)]
    finally:
        executor.close()


def test_a_guarded_script_may_define_what_its_workers_run(tmp_path: Path) -> None:
    result = _run_script(tmp_path, """
        from gristmill.data.executors import make_executor

        def cube(x):
            return x ** 3

        if __name__ == "__main__":
            executor = make_executor("local", 2)
            print(sorted(executor.map(cube, range(6))))
            executor.close()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 1, 8, 27, 64, 125]"


def test_a_script_without_the_main_guard_is_told_what_to_add(tmp_path: Path) -> None:
    result = _run_script(tmp_path, """
        import math
        from gristmill.data.executors import make_executor

        print(list(make_executor("local", 2).map(math.sqrt, [1, 4, 9])))
    """)
    assert result.returncode != 0
    # (multiprocessing's resource tracker may still warn after it, so the error is not always the last line)
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("gristmill.data.executors.local.ExecutorError: a worker process ended abruptly")]
    assert len(errors) == 1 and 'if __name__ == "__main__":' in errors[0]
