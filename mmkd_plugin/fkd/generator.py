# Copyright (c) mmkd_plugin contributors.
"""Make an FKD label store: a teacher's top-k probabilities for M stored
random-resized crops of every training image (Shen and Xing, "A Fast
Knowledge Distillation Framework for Visual Recognition", ECCV 2022)."""
import copy
import hashlib
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from mmengine.utils import ProgressBar

from ..models.utils import resolve_model_config
from ..utils.read_checkpoint import read_checkpoint
from .crop_settings import crop_settings, split_train_pipeline
from .crops import (crop_rng, normalise_boxes, render_crop,
                    sample_crop_box)
from .label_store import FKDCrops, FKDLabelStore, FKDStoreMeta


def teacher_model_config(cfg: Config) -> dict:
    """The teacher's model config: the config's model, or its ``teacher``
    for a ``DistillationClassifier`` config. Its data preprocessor is its
    own, else the config's (as the runner merges it)."""
    model = copy.deepcopy(cfg.model)
    preprocessor = model.get('data_preprocessor',
                             cfg.get('data_preprocessor'))
    if model.get('type') == 'DistillationClassifier':
        model = resolve_model_config(model['teacher'], 'teacher')
    if preprocessor is not None and 'data_preprocessor' not in model:
        model['data_preprocessor'] = preprocessor
    return model


def build_teacher(cfg: Config, checkpoint: Optional[str]) -> nn.Module:
    """The config's (teacher) classifier with ``checkpoint`` loaded
    (strictly), in eval mode."""
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        teacher = MODELS.build(teacher_model_config(cfg))
    if checkpoint is None:
        teacher.init_weights()
    else:
        _load_checkpoint_to_model(
            teacher, read_checkpoint(checkpoint, 'TEACHER_CKPT'), strict=True)
    return teacher.eval()


def file_sha256(path: str) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class SoftLabelGenerator:
    """Labels every training image of a config with a teacher.

    Image i gets ``num_crops`` boxes drawn with the config's
    ``RandomResizedCrop`` settings and flip flags with its ``RandomFlip``
    probability, from a generator seeded by (seed, i); the teacher sees each
    crop resized to the crop's ``scale`` (after the pipeline's transforms
    before the crop, e.g. loading; no colour augmentation), and its top-k
    softmax probabilities are stored with the box and flag.

    Args:
        cfg (Config): A classification config: its train dataset and
            pipeline, and its model (or a ``DistillationClassifier``'s
            teacher) as the teacher.
        teacher_ckpt (str, optional): Teacher checkpoint (None: random
            weights, for tests).
        out_dir (str): The store directory (resumed if it exists with the
            same settings).
        num_crops (int): Crops per image (M). Defaults to 500 (authors).
        topk (int): Probabilities stored per crop. Defaults to 5 (authors).
        fp16 (bool): Store probabilities as float16 (half the label bytes).
        seed (int): Seed of the crop draws. Defaults to 0.
        crops_per_batch (int): Crops per teacher forward. Defaults to 50.
        device (str): Where the teacher runs. Defaults to ``'cpu'``.
    """

    def __init__(self,
                 cfg: Config,
                 teacher_ckpt: Optional[str],
                 out_dir: str,
                 num_crops: int = 500,
                 topk: int = 5,
                 fp16: bool = False,
                 seed: int = 0,
                 crops_per_batch: int = 50,
                 device: str = 'cpu') -> None:
        dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
        pre_crop, crop_cfg, flip_prob = split_train_pipeline(
            dataset_cfg.get('pipeline', []))
        self.crop = crop_settings(crop_cfg, flip_prob)
        self.crops_per_batch = crops_per_batch
        self.device = device
        self.dataset = self._build_dataset(dataset_cfg)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.load_pipeline = Compose(pre_crop)
        self.teacher = build_teacher(cfg, teacher_ckpt).to(device)
        self.num_classes = self._num_classes(self.teacher)
        meta = FKDStoreMeta(
            num_classes=self.num_classes, num_crops=num_crops, topk=topk,
            prob_dtype='float16' if fp16 else 'float32', crop=self.crop,
            seed=seed, img_prefix=self.dataset.img_prefix,
            teacher=self._teacher_identity(cfg, teacher_ckpt))
        self.store = FKDLabelStore.create(out_dir, meta)

    @staticmethod
    def _build_dataset(dataset_cfg: dict):
        from mmpretrain.registry import DATASETS
        dataset_cfg['pipeline'] = []
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            dataset = DATASETS.build(dataset_cfg)
        if not hasattr(dataset, 'img_prefix'):
            raise ValueError(
                f'FKD: the train dataset {type(dataset).__name__} has no '
                f'img_prefix (the store keys images by their path under '
                f'it); use an mmpretrain dataset such as CustomDataset.')
        return dataset

    @staticmethod
    def _num_classes(teacher: nn.Module) -> int:
        num_classes = getattr(getattr(teacher, 'head', None), 'num_classes',
                              None)
        if num_classes is None:
            raise ValueError(
                'FKD: the teacher needs a classification head with '
                'num_classes (an mmpretrain ImageClassifier).')
        return int(num_classes)

    @staticmethod
    def _teacher_identity(cfg: Config, teacher_ckpt: Optional[str]) -> dict:
        identity = dict(config=osp.abspath(cfg.filename) if cfg.filename
                        else None,
                        model=teacher_model_config(cfg).get('type'))
        if teacher_ckpt is not None and osp.isfile(teacher_ckpt):
            identity.update(checkpoint=osp.abspath(teacher_ckpt),
                            checkpoint_sha256=file_sha256(teacher_ckpt))
        else:
            identity.update(checkpoint=teacher_ckpt)
        return identity

    def run(self, rank: int = 0, world_size: int = 1,
            progress: bool = True) -> Dict[str, int]:
        """Label this process's share of the images (every
        ``world_size``-th from ``rank``), skipping those already stored.

        Returns:
            dict: Counts ``written`` and ``skipped``.
        """
        indices = range(rank, len(self.dataset), world_size)
        bar = ProgressBar(len(indices)) if progress else None
        counts = dict(written=0, skipped=0)
        for index in indices:
            key = self.store.key_of(self.dataset.get_data_info(index)
                                    ['img_path'])
            if self.store.has(key):
                counts['skipped'] += 1
            else:
                self.store.write(key, self.label_image(index))
                counts['written'] += 1
            if bar is not None:
                bar.update()
        return counts

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` after the pipeline's transforms before the
        crop."""
        results = self.load_pipeline(self.dataset.get_data_info(index))
        return results['img']

    def draw_crops(self, index: int, height: int, width: int):
        """Image ``index``'s pixel boxes (M, 4) and flip flags (M, )."""
        rng = crop_rng(self.store.meta.seed, index)
        num_crops = self.store.meta.num_crops
        boxes = np.array([
            sample_crop_box(rng, height, width,
                            self.crop['crop_ratio_range'],
                            self.crop['aspect_ratio_range'],
                            self.crop['max_attempts'])
            for _ in range(num_crops)
        ]).reshape(num_crops, 4)
        flips = rng.random(num_crops) < self.crop['flip_prob']
        return boxes, flips

    @torch.no_grad()
    def label_image(self, index: int) -> FKDCrops:
        """Draw image ``index``'s crops and label them with the teacher."""
        img = self.load_image(index)
        height, width = img.shape[:2]
        boxes, flips = self.draw_crops(index, height, width)
        crops = [
            self._to_tensor(
                render_crop(img, tuple(box), flip, self.crop['scale'],
                            self.crop['interpolation'], self.crop['backend']))
            for box, flip in zip(boxes, flips)
        ]
        topk = self.store.meta.topk
        all_indices, all_probs = [], []
        for start in range(0, len(crops), self.crops_per_batch):
            batch = crops[start:start + self.crops_per_batch]
            inputs = self.teacher.data_preprocessor(dict(inputs=batch),
                                                    False)['inputs']
            probs = self.teacher(inputs, mode='tensor').float().softmax(-1)
            top_probs, top_indices = probs.topk(topk, dim=-1)
            all_indices.append(top_indices.cpu())
            all_probs.append(top_probs.cpu())
        return FKDCrops(boxes=normalise_boxes(boxes, height, width),
                        flips=flips,
                        indices=torch.cat(all_indices).numpy(),
                        probs=torch.cat(all_probs).numpy())

    @staticmethod
    def _to_tensor(img: np.ndarray) -> torch.Tensor:
        """An (H, W[, C]) image as the (C, H, W) tensor PackInputs makes."""
        if img.ndim == 2:
            img = img[..., None]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
