# Copyright (c) mmkd_plugin contributors.
"""Several stored crops of one decoded image in the same training step, as
FKD's authors train (Shen and Xing, ECCV 2022)."""
from typing import List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmpretrain.registry import TRANSFORMS

from .replay_crop import FKDReplayCrop


@TRANSFORMS.register_module()
class FKDMultiCrop(BaseTransform):
    """``num_crops`` different stored crops of one loaded image, each with
    its soft label and through the rest of the pipeline.

    The image is decoded once; the crops are drawn without replacement from
    the image's M stored ones (the authors' default is 4 per image). Use
    it as the last step of the training pipeline, with the dataloader's
    ``collate_fn=dict(type='fkd_multi_crop_collate')``, which puts every
    crop in the batch as a sample of its own: a batch of B images holds
    B * num_crops crops, and one pass over the data shows each image
    num_crops times (the authors count it as num_crops epochs).

    Example::

        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='FKDMultiCrop', num_crops=4,
                 replay=dict(type='FKDReplayCrop', label_root=..., ...),
                 transforms=[dict(type='ColorJitter', brightness=0.4),
                             dict(type='PackInputs')]),
        ]

    Args:
        replay (dict): An ``FKDReplayCrop`` config.
        num_crops (int): Crops per image per step (<= the store's M).
            Defaults to 4.
        transforms (list[dict], optional): Applied to each crop after the
            replay, ending with ``PackInputs``. Defaults to
            ``[dict(type='PackInputs')]``.
    """

    def __init__(self,
                 replay: dict,
                 num_crops: int = 4,
                 transforms: Optional[Sequence[dict]] = None) -> None:
        self.replay = TRANSFORMS.build(replay)
        if not isinstance(self.replay, FKDReplayCrop):
            raise ValueError(f'FKDMultiCrop: replay must be an FKDReplayCrop '
                             f'config, got {replay.get("type")}.')
        stored = self.replay.store.meta.num_crops
        if not 1 <= num_crops <= stored:
            raise ValueError(
                f'FKDMultiCrop: num_crops must be in [1, {stored}] (the '
                f'crops stored per image), got {num_crops}.')
        self.num_crops = num_crops
        self.pipeline = Compose(transforms or [dict(type='PackInputs')])

    def transform(self, results: dict) -> dict:
        chosen = np.random.choice(self.replay.store.meta.num_crops,
                                  self.num_crops, replace=False)
        crops = self.replay.read_crops(results, chosen)
        packed = [
            self.pipeline(
                self.replay.replay(dict(results), crops, index, crop_id))
            for index, crop_id in enumerate(chosen)
        ]
        return dict(inputs=[item['inputs'] for item in packed],
                    data_samples=[item['data_samples'] for item in packed])


@FUNCTIONS.register_module()
def fkd_multi_crop_collate(data_batch: Sequence[dict]) -> dict:
    """Collate ``FKDMultiCrop`` outputs: every crop becomes one sample
    (then mmengine's ``pseudo_collate``)."""
    samples: List[dict] = []
    for item in data_batch:
        if isinstance(item['inputs'], list):
            samples.extend(
                dict(inputs=inputs, data_samples=data_sample)
                for inputs, data_sample in zip(item['inputs'],
                                               item['data_samples']))
        else:
            samples.append(item)
    return pseudo_collate(samples)
