"""tests/warm_python.py, the warm start of the tests' script processes, behaves as `python` does: exit status,
stdout and stderr, an uncaught exception, SIGKILL, argv and `-m`; run_ranks names a failed rank; a cold command
run in its own session leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.warm_python import REPO, run_in_own_session, run_python, run_ranks

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


def leaves_a_child_running(pid_file: Path, then: str) -> list[str]:
    """A cold `python -c` that starts a sleeping child with its own output (as a service does), writes the
    child's pid to pid_file, then runs `then`."""
    return [sys.executable, "-c", "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n{then}"]


def gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_cold_command_leaves_nothing_running_and_past_its_time_fails_the_test(tmp_path):
    ended = run_in_own_session(leaves_a_child_running(tmp_path / "a.pid", "print('done')"), timeout=60)
    assert (ended.returncode, ended.stdout) == (0, "done\n")
    assert gone(int((tmp_path / "a.pid").read_text()))
    with pytest.raises(pytest.fail.Exception, match="did not end within 3 s"):
        run_in_own_session(leaves_a_child_running(tmp_path / "b.pid", "time.sleep(120)"), timeout=3)
    assert gone(int((tmp_path / "b.pid").read_text()))
