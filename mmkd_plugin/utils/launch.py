# Copyright (c) mmkd_plugin contributors.
"""Command-line and launcher handling shared by tools/train.py and
tools/test.py."""
import argparse
import gc
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank``.

    Args:
        parser (argparse.ArgumentParser): Parser to extend.
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (or --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config``, apply ``--cfg-options`` and the launcher.

    Args:
        args (argparse.Namespace): Parsed arguments with ``config``,
            ``cfg_options``, ``launcher``, ``local_rank`` and ``work_dir``.

    Returns:
        Config: The config, ready for :func:`build_runner`.
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    apply_launcher(cfg, args.launcher, args.config, args.work_dir)
    return cfg


def destroy_process_group() -> None:
    """Tear down the default process group, if one was started.

    mmengine leaves the group alive at exit; gloo's worker threads are then
    destroyed during interpreter shutdown and can abort the process
    ("terminate called without an active exception") after training
    finished. Call this once the runner is done.

    Unreachable objects are collected first. A finished runner is in a
    reference cycle (its loops refer back to it), so without this its DDP
    wrapper would be freed by a later collection, after the group, and
    gloo's destructor can then wait forever for its threads.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` if it names one, else mmengine's Runner."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def apply_launcher(cfg: Config, launcher: str, config_path: str,
                   work_dir: Optional[str]) -> None:
    """Set the launcher, work dir and, without GPUs, CPU-friendly DDP.

    Without CUDA, multi-process runs use the gloo backend and DDP without
    ``device_ids`` (mmengine's default passes the local rank as a GPU id),
    and a ``torchrun`` process group is initialised here, because
    mmengine's pytorch launcher always calls ``torch.cuda.set_device``.

    Args:
        cfg (Config): Config to update in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        config_path (str): Path of the config, names the default work dir.
        work_dir (str, optional): Work dir from the command line.
    """
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = \
        'gloo'
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
