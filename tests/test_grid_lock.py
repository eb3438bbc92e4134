"""One grid per results directory; a killed grid leaves no cell process behind.

The "grid" here is a small Python process that takes the results lock and starts a child
with ``runner.run.spawn``, exactly as ``run_grid`` starts each cell; the child sleeps instead
of training, so the test takes seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from unlearnbench import cli

REPO = Path(__file__).resolve().parents[1]

GRID_PROCESS = textwrap.dedent("""
    import sys, time
    from unlearnbench.runner.lock import ResultsLock
    from unlearnbench.runner.run import spawn

    with ResultsLock(sys.argv[1]) as lock, open(sys.argv[2], "w") as log:
        child = spawn([sys.executable, "-c", "import time; time.sleep(300)"], log, (lock.fd,))
        print(child.pid, flush=True)
        child.wait()
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has finished


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_second_grid_refuses_naming_the_pid_and_kill_9_leaves_no_orphan(tmp_path, capsys):
    out = tmp_path / "results"
    grid = subprocess.Popen([sys.executable, "-c", GRID_PROCESS, str(out), str(tmp_path / "log.txt")],
                            cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        child = int(grid.stdout.readline())
        raw = {"name": "g", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"],
               "references": {"retain_seeds": [0]}, "methods": ["ga"]}
        (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
        # The second grid on the same directory refuses in one line, naming the holder.
        assert cli.main(["grid", str(tmp_path / "g.yaml"), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by another grid (PID {grid.pid})" in err and "--wait" in err
        assert len(err.splitlines()) == 1
        assert not (out / "grid.json").exists()  # it touched nothing
        grid.send_signal(signal.SIGKILL)
        grid.wait()
        deadline = time.time() + 20
        while _alive(child) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the cell process outlived its grid"
        # With the grid and its child gone, the lock is free again.
        from unlearnbench.runner.lock import ResultsLock

        with ResultsLock(out):
            assert (out / ".lock").read_text().strip() == str(os.getpid())
    finally:
        grid.kill()
        grid.wait()


def test_wait_blocks_until_the_holder_is_done(tmp_path):
    from unlearnbench.runner.lock import ResultsLock

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from unlearnbench.runner.lock import ResultsLock
        with ResultsLock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(1.5)
    """), str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "locked"
    said = []
    t0 = time.time()
    with ResultsLock(tmp_path, wait=True, log=said.append):
        waited = time.time() - t0  # it got the lock only once the holder let go (1.5 s after "locked")
    assert waited > 1.0 and f"in use by PID {holder.pid}" in said[0]
    holder.wait()


def test_a_bad_parameter_is_refused_without_waiting_for_the_lock(tmp_path):
    """`--wait` on a directory another grid holds must not hold back a one-line input error."""
    from unlearnbench.runner.lock import ResultsLock

    out = tmp_path / "results"
    raw = {"name": "g", "benchmark": "tofu-synth", "splits": ["forget01"], "models": ["tiny-test"],
           "references": {"retain_seeds": [0]}, "methods": [{"name": "npo", "params": {"beta": -1}}]}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    with ResultsLock(out):  # this process holds the directory; a grid that waited would time out
        proc = subprocess.run([sys.executable, "-m", "unlearnbench.cli", "grid", str(tmp_path / "g.yaml"),
                               "--out", str(out), "--wait"], cwd=REPO, capture_output=True, text=True, timeout=90)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "beta" in err, err
