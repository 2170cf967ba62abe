# Copyright (c) mmkd_plugin contributors.
"""The end of a distributed run in tools/train.py and tools/test.py."""
import gc
import weakref

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mmkd_plugin.utils import launch


class _Cycle:
    """An object that refers to itself, as mmengine's runner does through
    its loops (``runner.train_loop.runner``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.itself = self


def test_unreachable_ddp_wrappers_are_freed_before_the_group(
        tmp_path, monkeypatch):
    """A finished runner is freed only by the cycle collector. A DDP wrapper
    freed after its process group can wait forever in gloo's destructor
    (tests/test_ddp_equivalence.py hung so), so the group goes only once
    unreachable objects are collected."""
    assert not dist.is_initialized()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/init',
                            rank=0, world_size=1)
    wrapper = weakref.ref(
        _Cycle(DistributedDataParallel(torch.nn.Linear(2, 2))).model)
    freed_before_destroy = []
    destroy = dist.destroy_process_group

    def record_then_destroy(*args, **kwargs):
        freed_before_destroy.append(wrapper() is None)
        gc.collect()  # never leave the wrapper to outlive the group here
        destroy(*args, **kwargs)

    monkeypatch.setattr(dist, 'destroy_process_group', record_then_destroy)
    gc.disable()  # only an explicit collection may free the cycle
    try:
        assert wrapper() is not None
        launch.destroy_process_group()
    finally:
        gc.enable()
        if dist.is_initialized():  # launch failed: still free it first
            gc.collect()
            destroy()
    assert freed_before_destroy == [True]
    assert not dist.is_initialized()
