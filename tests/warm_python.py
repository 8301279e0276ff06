"""Run one of the repository's commands (`pretrain.py ...`, `-m tools.check_data ...`) as a process of its own that
starts warm, for the tests that need a real process (its exit status, its output, a SIGKILL).

`python pretrain.py` spends about 5 s of CPU importing torch, timm and transformers before it reads its
arguments; a test suite that starts dozens of them spends minutes on imports. Here each command is a process
forked from a server that imported them once (multiprocessing's forkserver, whose server has run no torch
operation, so no thread pool is forked), then runs the script as `python` would: as `__main__`, with its own
argv, working directory, environment, stdout and stderr, process group and exit status; at exit the
interpreter's atexit functions run and non-daemon threads are joined. What is not the same: modules the server
imported are not imported again (their import-time settings come from the server's environment), which is why
the benchmarks that time a cold start keep real interpreters.

warm_stand_ins does the same for the processes a launcher starts itself (torchrun's workers): the launcher starts
a light stand-in (tests/warm_stand_in.py), which has the script run warm and ends as it ends.

run_ranks starts the ranks of a gloo process group the same way as run_python, for tests that run a function on
each rank as torchrun would: mp.spawn would cold-start each rank (and make its DataLoader workers spawned rather
than forked, as under torchrun), and forking the test process itself fails once it has run autograd.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import multiprocessing
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRELOAD = ["torch", "timm.models.swin_transformer",
           "transformers.models.auto.modeling_auto", "transformers.models.bert.modeling_bert",  # built lazily else
           "tools.train.trainer", "tools.eval.cli", "tools.eval.plots", "tools.eval.report_card",
           "pytest"]  # run_ranks' functions live in test modules
"""What the server imports once: each process would otherwise import these itself (after torch, timm and the
trainer: BERT's modules 0.5 s, matplotlib through tools.eval.plots 0.6 s, the report card's metrics 0.45 s)."""

_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _exit_code(error: SystemExit) -> int:
    """What `python` exits with for sys.exit(code)."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _start_as_python(env: dict[str, str]) -> None:
    """In the forked process: the environment, threads, signals and start method of a fresh `python`."""
    os.environ.clear()
    os.environ.update(env)
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the forkserver reset it to SIG_DFL
    multiprocessing.set_start_method("fork", force=True)  # `python`'s default here (DataLoader workers)
    gc.freeze()  # what the server imported lives until the end: later collections leave it alone


def _run_as_main(args: list[str], cwd: str, env: dict[str, str], stdout_path: str, stderr_path: str) -> None:
    """In the forked process: become `python *args` writing to these two files; never returns."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
    _become_python(args, cwd, env)


def _become_python(args: list[str], cwd: str, env: dict[str, str]) -> None:
    """In a forked process whose fds 0, 1 and 2 are set: run `python *args` and exit as it would; never returns."""
    os.setsid()  # a process group of its own, as the tests' subprocesses have (start_new_session)
    os.chdir(cwd)
    _start_as_python(env)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    code = 0
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[0] = ""
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            sys.argv = list(args)
            sys.path[0] = str(Path(args[0]).resolve().parent)
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as error:
        code = _exit_code(error)
    except BaseException:  # noqa: BLE001 - `python` prints any uncaught exception and exits with 1
        traceback.print_exc()
        code = 1
    threading._shutdown()  # as the interpreter does at exit: join non-daemon threads, then atexit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def run_python(args: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """`python *args` (args such as ["pretrain.py", "-c", "x.yaml"], ["-m", "tools.check_data", ...] or ["-c", code])
    in `cwd`,
    warm. Returns a CompletedProcess with args [sys.executable, *args], the exit status (-9 when killed by
    SIGKILL) and the text of stdout and stderr. Past `timeout` s the process group is killed and TimeoutExpired
    raised with its output so far."""
    with tempfile.TemporaryDirectory() as folder:
        stdout_path, stderr_path = Path(folder, "stdout"), Path(folder, "stderr")
        stdout_path.touch()
        stderr_path.touch()
        process = _forkserver().Process(target=_run_as_main, args=(
            list(args), str(cwd), dict(os.environ if env is None else env), str(stdout_path), str(stderr_path)))
        process.start()
        process.join(timeout)
        timed_out = process.exitcode is None
        _kill_group(process.pid)  # on a time-out; else whatever it left running (wandb's service)
        process.join()
        stdout, stderr = stdout_path.read_text(errors="replace"), stderr_path.read_text(errors="replace")
    command = [sys.executable, *args]
    if timed_out:
        raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(command, process.exitcode, stdout, stderr)


STAND_IN = REPO / "tests" / "warm_stand_in.py"


@contextlib.contextmanager
def warm_stand_ins(timeout: float = 600) -> Iterator[list[str]]:
    """For a launcher that starts `python SCRIPT ARGS` itself (torchrun): yields the words to put before SCRIPT,
    [STAND_IN, socket], so that it starts tests/warm_stand_in.py instead, a light process that has SCRIPT run
    warm (as run_python does) on its own stdin, stdout, stderr and environment, forwards the signals it receives
    and ends as SCRIPT ended (its exit status, or killed by the same signal). On leaving, any process still
    running is killed."""
    with tempfile.TemporaryDirectory() as folder:
        socket_path = str(Path(folder, "warm.sock"))
        server = _forkserver().Process(target=_serve_stand_ins, args=(socket_path, timeout))
        server.start()
        try:
            while not os.path.exists(socket_path):
                if not server.is_alive():
                    raise RuntimeError(f"the stand-ins' server ended at start with exit status {server.exitcode}")
                time.sleep(0.01)
            yield [str(STAND_IN), socket_path]
        finally:
            server.terminate()  # its SIGTERM handler kills the processes it started
            server.join()


def _serve_stand_ins(socket_path: str, timeout: float) -> None:
    """In a process of the forkserver: for each stand-in that connects, fork a process that becomes `python
    *args` on the stand-in's fds 0, 1, 2 (sent with the request); pass on each signal number the stand-in sends;
    send back the exit status. A stand-in that hangs up has its process killed with SIGKILL; so has every
    process at SIGTERM or after `timeout` s."""
    processes: dict[int, socket.socket] = {}

    def kill_all_and_exit(*_) -> None:
        for pid in processes:
            _kill_group(pid)
        os._exit(0)

    signal.signal(signal.SIGTERM, kill_all_and_exit)
    signal.signal(signal.SIGALRM, kill_all_and_exit)
    signal.alarm(int(timeout))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    listener.listen()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select(timeout=0.02):
            if key.fileobj is listener:
                connection, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
                if not message or len(fds) != 3:  # a stand-in that ended before it asked
                    connection.close()
                    continue
                request = json.loads(message)
                pid = os.fork()
                if pid == 0:
                    for signal_number in (signal.SIGTERM, signal.SIGALRM):
                        signal.signal(signal_number, signal.SIG_DFL)
                    signal.alarm(0)
                    for target, fd in enumerate(fds):
                        os.dup2(fd, target)
                    for fd in fds:
                        if fd > 2:
                            os.close(fd)
                    for unused in (listener, connection, *processes.values()):
                        unused.close()
                    _become_python(request["args"], request["cwd"], request["env"])
                for fd in fds:
                    os.close(fd)
                processes[pid] = connection
                selector.register(connection, selectors.EVENT_READ, pid)
            else:
                message = key.fileobj.recv(64)
                if message:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(key.data, int(message))  # as a launcher signals its worker's group
                else:  # the stand-in is gone
                    _kill_group(key.data)
                    selector.unregister(key.fileobj)
        while processes:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = processes.pop(pid)
            with contextlib.suppress(OSError):
                connection.send(str(os.waitstatus_to_exitcode(status)).encode())
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(connection)
            connection.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, function: Callable, args: tuple, env: dict[str, str], error_path: str) -> None:
    _start_as_python(env)
    try:
        function(rank, *args)
    except BaseException:  # noqa: BLE001 - handed to the test, which names the rank
        Path(error_path).write_text(traceback.format_exc())
        raise


def run_ranks(function: Callable, args: tuple, world_size: int = 2, timeout: float = 300) -> None:
    """Call function(rank, *args) in `world_size` warm processes with MASTER_ADDR/MASTER_PORT (a free port) set,
    one torch thread each; `function` must be a module-level function (it is sent by name). Raises
    AssertionError with a failed rank's traceback, or when the ranks outrun `timeout` s (they are then killed)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        errors = [Path(folder, f"rank{rank}.txt") for rank in range(world_size)]
        processes = [_forkserver().Process(target=_rank_main, args=(rank, function, args, env, str(errors[rank])))
                     for rank in range(world_size)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout)
        for process in processes:
            if process.exitcode is None:
                process.kill()
                process.join()
        failed = [(rank, process.exitcode) for rank, process in enumerate(processes) if process.exitcode != 0]
        if failed:
            rank, code = failed[0]
            cause = errors[rank].read_text() if errors[rank].exists() else f"exit status {code} (None: timed out)"
            raise AssertionError(f"rank {rank} of {world_size} failed: {cause}")
