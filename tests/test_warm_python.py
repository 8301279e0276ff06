"""tests/warm_python.py, the warm start of the tests' script processes, behaves as `python` does: exit status,
stdout and stderr, an uncaught exception, SIGKILL, argv and `-m`; so does a script behind a stand-in, for the
launcher that started the stand-in, signals included; run_ranks names a failed rank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.warm_python import REPO, run_python, run_ranks, warm_stand_ins

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


def gone(pid: int) -> bool:
    """Whether process `pid` ends within 10 s (an ended process whose parent has not yet collected its exit
    status, a zombie, counts as ended: an orphan waits for init, which may take seconds)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def leaves_a_child_running(pid_file: Path, then: str) -> list[str]:
    """`python -c` args that start a sleeping child with its own output (as wandb's service), write the child's
    pid to pid_file, then run `then`."""
    return ["-c", "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n{then}"]


def test_what_a_process_leaves_running_is_killed_and_so_is_one_past_its_time(tmp_path):
    ended = run_python(leaves_a_child_running(tmp_path / "a.pid", "print('done')"))
    assert (ended.returncode, ended.stdout) == (0, "done\n")
    assert gone(int((tmp_path / "a.pid").read_text()))
    with pytest.raises(subprocess.TimeoutExpired):
        run_python(leaves_a_child_running(tmp_path / "b.pid", "time.sleep(120)"), timeout=1)
    assert gone(int((tmp_path / "b.pid").read_text()))


def test_a_script_behind_a_stand_in_exits_and_prints_as_under_python(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    with warm_stand_ins() as warm:
        for how in ["0", "3", "raise", "message", "kill"]:
            cold = subprocess.run([sys.executable, str(script), how, str(tmp_path)], cwd=tmp_path,
                                  capture_output=True, text=True)
            stood_in = subprocess.run([sys.executable, *warm, str(script), how, str(tmp_path)], cwd=tmp_path,
                                      capture_output=True, text=True)
            assert (stood_in.returncode, stood_in.stdout) == (cold.returncode, cold.stdout), how
            assert stood_in.stderr.splitlines()[-1:] == cold.stderr.splitlines()[-1:], how


WAITING_SCRIPT = """import os, signal, sys, time
if sys.argv[1] == "handles": signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
open(sys.argv[2], "w").write(str(os.getpid()))
print(os.environ["MARK"], flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(("how", "stop", "expected"), [("handles", signal.SIGTERM, 7),
                                                       ("ignores", signal.SIGTERM, -signal.SIGTERM),
                                                       ("ignores", signal.SIGKILL, -signal.SIGKILL)])
def test_a_stand_in_passes_on_signals_and_takes_its_script_down_with_it(tmp_path, how, stop, expected):
    """The launcher signals the stand-in's process group, as torchrun does; SIGKILL, which a stand-in cannot pass
    on, ends the script through the stand-in's hang-up."""
    script, pid_file = tmp_path / "script.py", tmp_path / "script.pid"
    script.write_text(WAITING_SCRIPT)
    with warm_stand_ins() as warm:
        launched = subprocess.Popen([sys.executable, *warm, str(script), how, str(pid_file)], stdout=subprocess.PIPE,
                                    text=True, env={**os.environ, "MARK": how}, start_new_session=True)
        assert launched.stdout.readline() == f"{how}\n"  # its environment; the handler is set, the pid written
        os.killpg(launched.pid, stop)
        assert launched.wait(timeout=30) == expected
        assert gone(int(pid_file.read_text()))


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
