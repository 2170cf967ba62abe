# FKD at T = 4 (fkd-t4_resnet18-w4_digits.py) with 2 stored crops of each
# decoded image per step (FKDMultiCrop): every image is read and decoded once
# for 2 crops, so a counted epoch loads half as many images as plain
# training. Same labels as fkd-t4 (the store of all 10 probabilities).
#
# Epoch accounting follows the authors: a step holds 32 images x 2 crops =
# 64 crops (the baseline's batch) and one pass over the data counts as 2
# epochs, so the baseline's 20 epochs are 10 passes (cosine over the
# passes): the same number of steps and of crops seen as the baseline. For
# the 40-epoch schedule pass `train_cfg.max_epochs=20
# param_scheduler.T_max=20 default_hooks.checkpoint.interval=20`.
_base_ = './fkd-t4_resnet18-w4_digits.py'

_num_crops = 2
_passes = 20 // _num_crops
_label_root = '{{$DIGIT_CROPS_ROOT:data/digit_crops}}'.rstrip('/') + \
    '/fkd_labels_k10'

train_dataloader = dict(
    batch_size=64 // _num_crops,
    collate_fn=dict(type='fkd_multi_crop_collate'),
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='FKDMultiCrop', num_crops=_num_crops,
             replay=dict(type='FKDReplayCrop', label_root=_label_root,
                         num_classes=10, scale=32,
                         crop_ratio_range=(0.64, 1.0), flip_prob=0.0)),
    ]))

param_scheduler = dict(T_max=_passes)
train_cfg = dict(max_epochs=_passes)
default_hooks = dict(checkpoint=dict(interval=_passes))
