# Copyright (c) mmkd_plugin contributors.
"""The FKD training transform: replay a stored crop and its soft label."""
import math
from typing import Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .crop_settings import CROP_DEFAULTS
from .crops import pixel_box, render_crop
from .label_store import FKDCrops, FKDLabelStore
from .soft_labels import LABEL_TYPES, rebuild_soft_label


@TRANSFORMS.register_module()
class FKDReplayCrop(BaseTransform):
    """Replaces ``RandomResizedCrop`` + ``RandomFlip`` in an FKD student's
    training pipeline (Shen and Xing, "A Fast Knowledge Distillation
    Framework for Visual Recognition", ECCV 2022).

    Each call picks one of the image's M stored crops uniformly at random
    (the authors draw each step's crops from the M stored ones; with the
    dataloader's seeded workers this is reproducible), cuts that box out of
    the image (normalised coordinates times the image's size), resizes it
    to ``scale``, flips it if the stored flag says so, and sets
    ``gt_score`` to the teacher's label for that crop rebuilt from its
    top-k probabilities. Train a plain ``ImageClassifier`` whose head uses
    ``CrossEntropyLoss(use_soft=True)``: no teacher is built. Transforms
    after this one (colour jitter, ...) and batch mixup / cutmix work as
    usual on the image and the soft label.

    The transforms before it must be those of the store's generation run
    (loading): the boxes are replayed on the image they see.

    **Required keys:** ``img``, ``img_path``.
    **Modified keys:** ``img``, ``img_shape``.
    **Added keys:** ``gt_score``, ``flip``, ``flip_direction``,
    ``fkd_crop_index``.

    Args:
        label_root (str): The store made by ``tools/make_soft_labels.py``.
        num_classes (int): Classes of the student's head; must equal the
            store's.
        scale (int | tuple): Output size (h, w) of the student's crops (may
            differ from the size the teacher saw).
        crop_ratio_range (tuple): The config's crop area range; must equal
            the store's. Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple): Likewise. Defaults to (3/4, 4/3).
        flip_prob (float): The config's horizontal flip probability; must
            equal the store's. Defaults to 0.5.
        label_type (str): How the label is rebuilt, one of
            ``'marginal_smoothing'`` (default, authors'),
            ``'marginal_renorm'``, ``'smoothing'``, ``'hard'``.
        interpolation (str): Resize interpolation. Defaults to
            ``'bilinear'``.
        backend (str): Resize backend. Defaults to ``'cv2'``.
        img_prefix (str, optional): The image prefix the store's keys are
            relative to, if the data moved since; defaults to the store's.
    """

    def __init__(self,
                 label_root: str,
                 num_classes: int,
                 scale: Union[int, Sequence[int]],
                 crop_ratio_range: Sequence[float] = CROP_DEFAULTS[
                     'crop_ratio_range'],
                 aspect_ratio_range: Sequence[float] = CROP_DEFAULTS[
                     'aspect_ratio_range'],
                 flip_prob: float = 0.5,
                 label_type: str = 'marginal_smoothing',
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2',
                 img_prefix: Optional[str] = None) -> None:
        if label_type not in LABEL_TYPES:
            raise ValueError(f'FKDReplayCrop: label_type must be one of '
                             f'{LABEL_TYPES}, got "{label_type}".')
        self.store = FKDLabelStore.open(label_root)
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(
            scale)
        self.num_classes = num_classes
        self.label_type = label_type
        self.interpolation = interpolation
        self.backend = backend
        self.img_prefix = img_prefix
        self._check_store(num_classes, crop_ratio_range, aspect_ratio_range,
                          flip_prob)

    def _check_store(self, num_classes: int,
                     crop_ratio_range: Sequence[float],
                     aspect_ratio_range: Sequence[float],
                     flip_prob: float) -> None:
        meta = self.store.meta
        if meta.num_classes != num_classes:
            raise ValueError(
                f'FKDReplayCrop: the label store "{self.store.root}" has '
                f'{meta.num_classes} classes, the student\'s head '
                f'{num_classes}.')
        wanted = dict(crop_ratio_range=list(crop_ratio_range),
                      aspect_ratio_range=list(aspect_ratio_range),
                      flip_prob=[flip_prob])
        stored = dict(crop_ratio_range=meta.crop['crop_ratio_range'],
                      aspect_ratio_range=meta.crop['aspect_ratio_range'],
                      flip_prob=[meta.crop['flip_prob']])
        for name, values in wanted.items():
            if len(values) != len(stored[name]) or not all(
                    math.isclose(a, b, rel_tol=1e-6)
                    for a, b in zip(values, stored[name])):
                raise ValueError(
                    f'FKDReplayCrop: {name} {values} differs from the '
                    f'{stored[name]} the label store "{self.store.root}" '
                    f'was made with; make the store with this config.')

    def read_crops(self,
                   results: dict,
                   crop_ids: Optional[Sequence[int]] = None) -> FKDCrops:
        """The stored crops of the sample's image: all, or ``crop_ids``."""
        return self.store.read(
            self.store.key_of(results['img_path'], self.img_prefix),
            crop_ids)

    def transform(self, results: dict) -> dict:
        crop_id = np.random.randint(self.store.meta.num_crops)
        crops = self.read_crops(results, [crop_id])
        return self.replay(results, crops, 0, crop_id)

    def replay(self,
               results: dict,
               crops: FKDCrops,
               index: int,
               crop_id: Optional[int] = None) -> dict:
        """Apply crop ``index`` of ``crops`` and its label to ``results``.

        Args:
            results (dict): The sample.
            crops (FKDCrops): Crops read from the store.
            index (int): Which of ``crops``.
            crop_id (int, optional): Its number in the store, recorded as
                ``fkd_crop_index``; defaults to ``index`` (``crops`` holds
                all the image's crops).
        """
        img = results['img']
        box = pixel_box(crops.boxes[index], *img.shape[:2])
        flip = bool(crops.flips[index])
        img = render_crop(img, box, flip, self.scale, self.interpolation,
                          self.backend)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        results['fkd_crop_index'] = index if crop_id is None else crop_id
        results['gt_score'] = rebuild_soft_label(crops.indices[index],
                                                 crops.probs[index],
                                                 self.num_classes,
                                                 self.label_type)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(label_root='
                f'{self.store.root!r}, scale={self.scale}, '
                f'label_type={self.label_type!r})')
