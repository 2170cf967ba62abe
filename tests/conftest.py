# Copyright (c) mmkd_plugin contributors.
"""Shared helpers: tiny batches and configs that never download weights."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

import mmkd_plugin  # noqa: F401

register_all_modules()  # default scope 'mmdet', as the runner sets it

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs')


def make_batch(num_images: int = 2, size: int = 160, num_classes: int = 80,
               seed: int = 0):
    """Random images (already normalised) and data samples with boxes."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_images, 3, size, size, generator=gen)
    samples = []
    for index in range(num_images):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), batch_input_shape=(size, size),
            scale_factor=(1.0, 1.0)))
        num_boxes = 2 + index
        xy = torch.rand(num_boxes, 2, generator=gen) * size * 0.6
        wh = 6 + torch.rand(num_boxes, 2, generator=gen) * size * 0.3
        instances = InstanceData()
        instances.bboxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)
        instances.labels = torch.randint(0, num_classes, (num_boxes, ),
                                         generator=gen)
        sample.gt_instances = instances
        samples.append(sample)
    return inputs, samples


def load_offline_config(name: str, teacher_ckpt=None) -> Config:
    """Load a config with no pretrained-weight downloads.

    Args:
        name (str): Config file name in ``configs/``.
        teacher_ckpt (str, optional): Replaces the model-zoo URL.
    """
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    model = cfg.model
    if model.type != 'DistillationDetector':  # a plain mmdet detector
        model.backbone.init_cfg = None
        return cfg
    for part in ('student', 'teacher'):
        if isinstance(model[part], str):  # a config reference
            model[part] = dict(cfg_path=model[part])
        backbone = model[part].get('backbone', {})
        backbone['init_cfg'] = None
        model[part]['backbone'] = backbone
    model.teacher_ckpt = teacher_ckpt
    return cfg


@pytest.fixture
def random_teacher_ckpt(tmp_path):
    """Factory: save a randomly initialised model's weights, return path."""

    def save(model: torch.nn.Module) -> str:
        path = str(tmp_path / 'teacher.pth')
        torch.save({'state_dict': model.state_dict()}, path)
        return path

    return save


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for a test module: tiny models run fastest on one
    thread (several threads on a loaded 2-core machine made the resume and
    DDP tests four times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_message_hub(request):
    """Each test starts with its own MessageHub, as a fresh runner would: a
    runner of an earlier test leaves its epoch and max_epochs in the
    current hub, which epoch schedules (warm-ups, CTKD) read."""
    from mmengine.logging import MessageHub
    MessageHub.get_instance(f'pytest:{request.node.nodeid}')


@pytest.fixture(autouse=True)
def default_scope_kept(request):
    """A runner built in a test (mmengine's ``Runner``) makes its config's
    scope (e.g. mmpretrain) the current default scope for the rest of the
    process; put the scope the test started with back afterwards, so later
    tests build in the registries they expect."""
    from mmengine.registry import DefaultScope
    scope = DefaultScope.get_current_instance().scope_name
    yield
    if DefaultScope.get_current_instance().scope_name != scope:
        DefaultScope.get_instance(f'pytest-restore:{request.node.nodeid}',
                                  scope_name=scope)
