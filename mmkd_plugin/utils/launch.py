# Copyright (c) mmkd_plugin contributors.
"""Launcher settings shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config


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
