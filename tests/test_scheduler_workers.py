# Copyright (c) mmkd_plugin contributors.
"""The benchmark's worker processes end when the benchmark is killed."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.conftest import REPO_ROOT

# A benchmark stand-in: a pool with the benchmark's worker initialiser
# (polling its parent every 0.2 s), one worker busy with a long task.
PARENT = textwrap.dedent('''
    import multiprocessing, os, time
    from concurrent.futures import ProcessPoolExecutor
    from mmkd_plugin.efficacy.scheduler import _worker_init

    if __name__ == '__main__':
        pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context('spawn'),
            initializer=_worker_init, initargs=(1, os.getpid(), 0.2))
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120)
        time.sleep(120)
''')


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_worker_ends_when_the_benchmark_is_killed(tmp_path):
    script = tmp_path / 'parent.py'
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)],
                              stdout=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT,
                              env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    worker = int(parent.stdout.readline())
    time.sleep(0.5)  # the long task has started
    assert running(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = running(worker)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, 'the worker outlived the benchmark process'
