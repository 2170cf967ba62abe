# Copyright (c) mmkd_plugin contributors.
"""Run the benchmark's runs on a few worker processes, teachers first.

Each run trains in a worker process of its own (spawned, one torch thread
by default), its mmengine output going to ``<work-dir>/<name>/console.log``;
this process prints one line when a run starts or ends and, every
``progress_every`` seconds, the iteration each running run has reached.
A distilled run starts once its teacher has finished.
"""
import contextlib
import glob
import json
import multiprocessing
import os
import os.path as osp
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Dict, List, Optional

from .runs import RunSpec, finished_result, run

CONSOLE_LOG = 'console.log'


PARENT_POLL_SECONDS = 5.0


def _exit_with_parent(parent_pid: int, poll_seconds: float) -> None:
    """End this process once ``parent_pid`` is no longer its parent (the
    benchmark was killed): a worker must not go on training into run
    folders that a restarted benchmark uses."""
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


def _worker_init(threads: int, parent_pid: int,
                 poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Give each worker process ``threads`` torch threads that sleep while
    they wait (spinning OpenMP threads slow down the other worker), and
    end it when the benchmark process dies."""
    threading.Thread(target=_exit_with_parent,
                     args=(parent_pid, poll_seconds), daemon=True).start()
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    import torch
    torch.set_num_threads(threads)


def _run_logged(spec: RunSpec, work_dir: str, *args) -> dict:
    """:func:`run` with the worker's output in the run's console log."""
    run_dir = osp.join(work_dir, spec.name)
    os.makedirs(run_dir, exist_ok=True)
    with open(osp.join(run_dir, CONSOLE_LOG), 'a', encoding='utf-8') as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return run(spec, work_dir, *args)


def reached_iter(work_dir: str, name: str) -> Optional[int]:
    """The last iteration mmengine logged for run ``name`` (its
    ``vis_data/scalars.json``), or None before the first log line."""
    logs = sorted(glob.glob(osp.join(work_dir, name, '*', 'vis_data',
                                     'scalars.json')), key=osp.getmtime)
    if not logs:
        return None
    with open(logs[-1], encoding='utf-8') as file:
        lines = file.read().strip().splitlines()
    try:
        return int(json.loads(lines[-1])['iter']) if lines else None
    except (ValueError, KeyError):
        return None


def run_all(specs: List[RunSpec], work_dir: str, data_root: str,
            dataset_meta: dict, splits: List[str], jobs: int = 2,
            threads: int = 1, progress_every: float = 60.0,
            log: Callable[[str], None] = print) -> Dict[str, dict]:
    """Run every spec (teachers before their students) on ``jobs`` worker
    processes.

    Args:
        specs (list[RunSpec]): The runs; a teacher must be among them.
        work_dir (str): Folder holding every run's folder.
        data_root (str): The generated dataset.
        dataset_meta (dict): The dataset's parameters.
        splits (list[str]): Splits every run is evaluated on.
        jobs (int): Worker processes. Defaults to 2.
        threads (int): Torch threads per worker. Defaults to 1.
        progress_every (float): Seconds between progress lines.
        log (callable): Prints one line.

    Returns:
        dict[str, dict]: Each run's result (:func:`runs.run`), by name.
    """
    by_name = {spec.name: spec for spec in specs}
    for spec in specs:
        if spec.teacher is not None and spec.teacher not in by_name:
            raise ValueError(f'run {spec.name}: its teacher {spec.teacher} '
                             'is not among the runs')
    results: Dict[str, dict] = {}
    waiting = list(specs)
    running = {}
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(jobs, mp_context=context,
                             initializer=_worker_init,
                             initargs=(threads, os.getpid())) as pool:
        while waiting or running:
            for spec in [s for s in waiting
                         if s.teacher is None or s.teacher in results]:
                if len(running) >= jobs:
                    break
                waiting.remove(spec)
                teacher = results.get(spec.teacher)
                finished = finished_result(spec, work_dir, data_root,
                                           dataset_meta, splits, teacher)
                if finished is not None:
                    results[spec.name] = finished
                    log(f'{spec.name}: ' +
                        _result_line(finished, splits, spec))
                    continue
                log(f'{spec.name}: started ({spec.config}, seed {spec.seed}, '
                    f'{spec.iters} iterations)')
                future = pool.submit(_run_logged, spec, work_dir, data_root,
                                     dataset_meta, splits, teacher)
                running[future] = spec
            done, _ = wait(running, timeout=progress_every,
                           return_when=FIRST_COMPLETED)
            for future in done:
                spec = running.pop(future)
                try:
                    results[spec.name] = result = future.result()
                except Exception as error:
                    log(f'{spec.name}: failed, see '
                        f'{osp.join(work_dir, spec.name, CONSOLE_LOG)}')
                    raise error
                log(f'{spec.name}: ' + _result_line(result, splits, spec))
            if not done and running:
                log('running: ' + ', '.join(
                    f'{spec.name} {reached_iter(work_dir, spec.name) or 0}/'
                    f'{spec.iters}' for spec in running.values()))
            sys.stdout.flush()
    return results


def _result_line(result: dict, splits: List[str], spec: RunSpec) -> str:
    """One line on a finished run."""
    task = spec.task_spec()
    scores = ', '.join(
        f'{split} {task.score_name} '
        f'{result["metrics"][split][task.score_key]:.1f}'
        for split in splits)
    if result['cached']:
        return f'reused ({scores})'
    if not result['trained']:
        return f'trained earlier, evaluated ({scores})'
    return (f'done in {result["train_seconds"] / 60:.1f} min '
            f'({result["seconds_per_iter"]:.2f} s/iter; {scores})')
