"""tests/warm_python.py, the warm start of the tests' script processes, behaves as `python` does: exit status,
stdout and stderr, an uncaught exception, SIGKILL, argv and `-m`; run_ranks names a failed rank."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.warm_python import REPO, run_python, run_ranks

pytestmark = pytest.mark.slow  # each worker's first warm process starts the forkserver: about 5 s

SCRIPT = """import os, signal, sys
print("out", sys.argv[1:], os.getcwd() == sys.argv[2]); print("err", file=sys.stderr)
if sys.argv[1] == "kill": os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "raise": raise RuntimeError("bad input")
if sys.argv[1] == "message": sys.exit("a message")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("how", ["0", "3", "raise", "message", "kill"])
def test_a_script_exits_and_prints_as_under_python(tmp_path, how):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    cold = subprocess.run([sys.executable, str(script), how, str(REPO)], cwd=REPO, capture_output=True, text=True)
    warm = run_python([str(script), how, str(REPO)])
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)
    assert warm.returncode == {"0": 0, "3": 3, "raise": 1, "message": 1, "kill": -9}[how]
    assert warm.stderr.splitlines()[-1:] == cold.stderr.splitlines()[-1:]


def test_a_module_and_code_run_as_main():
    warm = run_python(["-m", "tools.check_data", "--help"])
    assert warm.returncode == 0 and "usage:" in warm.stdout
    code = "import sys; print(__name__, sys.argv); sys.exit(4)"
    cold = subprocess.run([sys.executable, "-c", code, "a"], capture_output=True, text=True)
    warm = run_python(["-c", code, "a"])
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout) == (4, "__main__ ['-c', 'a']\n")


def failing_on_rank_one(rank: int) -> None:
    if rank == 1:
        raise ValueError("rank one broke")


def test_run_ranks_names_the_failed_rank_and_its_error():
    with pytest.raises(AssertionError, match=r"(?s)rank 1 of 2 failed.*ValueError: rank one broke"):
        run_ranks(failing_on_rank_one, ())
