# Copyright (c) mmkd_plugin contributors.
"""The teacher receives exactly what its own data preprocessor would make
of the raw batch, whatever the student's preprocessor does."""
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample

from mmkd_plugin.models.utils import TeacherInputRenorm
from .conftest import load_offline_config

IMAGENET_RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                    bgr_to_rgb=True)
CAFFE_BGR = dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0],
                 bgr_to_rgb=False)
YOLOX_RAW = dict(bgr_to_rgb=False)  # no mean/std: raw pixels
RAW_RGB = dict(bgr_to_rgb=True)  # no mean/std, channels swapped


def raw_batch(seed: int = 0) -> dict:
    """Two uint8 BGR images as the loading pipeline gives them."""
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 24, 32), generator=gen,
                            dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=images, data_samples=[DetDataSample() for _ in images])


def preprocess(cfg: dict, batch: dict) -> torch.Tensor:
    """What a DetDataPreprocessor built from ``cfg`` outputs."""
    preprocessor = DetDataPreprocessor(**cfg)
    return preprocessor(batch, training=False)['inputs']


@pytest.mark.parametrize('student_cfg, teacher_cfg', [
    (IMAGENET_RGB, CAFFE_BGR),
    (YOLOX_RAW, IMAGENET_RGB),
    (YOLOX_RAW, CAFFE_BGR),
    (IMAGENET_RGB, YOLOX_RAW),
    (IMAGENET_RGB, RAW_RGB),
    (CAFFE_BGR, IMAGENET_RGB),
    (IMAGENET_RGB, IMAGENET_RGB),
])
def test_teacher_gets_its_own_preprocessing(student_cfg, teacher_cfg):
    batch = raw_batch()
    student_inputs = preprocess(student_cfg, batch)
    renorm = TeacherInputRenorm.from_configs(
        DetDataPreprocessor(**student_cfg),
        dict(type='DetDataPreprocessor', **teacher_cfg))
    torch.testing.assert_close(renorm(student_inputs),
                               preprocess(teacher_cfg, batch),
                               rtol=1e-5, atol=1e-4)


def test_caffe_teacher_config_with_mean_only():
    """A config giving a mean and no std divides by 1."""
    batch = raw_batch(1)
    renorm = TeacherInputRenorm.from_configs(
        DetDataPreprocessor(**YOLOX_RAW),
        dict(mean=CAFFE_BGR['mean'], bgr_to_rgb=False))
    torch.testing.assert_close(renorm(preprocess(YOLOX_RAW, batch)),
                               preprocess(CAFFE_BGR, batch),
                               rtol=1e-5, atol=1e-4)


def test_detector_renormalises_for_a_caffe_teacher():
    cfg = load_offline_config('cwd_retina_r101_r18.py')
    for side, preprocessing in (('student', YOLOX_RAW), ('teacher', CAFFE_BGR)):
        cfg.model[side].data_preprocessor = dict(
            _delete_=True, type='DetDataPreprocessor', **preprocessing)
    cfg.model.data_preprocessor = None
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    batch = raw_batch(2)
    student_inputs = model.data_preprocessor(batch, training=False)['inputs']
    torch.testing.assert_close(model.teacher_inputs(student_inputs),
                               preprocess(CAFFE_BGR, batch),
                               rtol=1e-5, atol=1e-4)
