# FKD (Shen and Xing, ECCV 2022) on the digit-crops proxy as its authors
# train: each decoded image gives 4 of its stored crops to the same step
# (FKDMultiCrop), so an image is read and decoded once for 4 crops. Same
# labels as fkd_resnet18-w4_digits.py (make them as described there; the
# store needs at least 4 crops per image).
#
# Epoch accounting follows the authors: a step holds 16 images x 4 crops =
# 64 crops (the baseline's batch), and one pass over the data counts as 4
# epochs, so the baseline's 20 epochs are 5 passes here (cosine over the 5
# passes). Same number of steps and of crops seen as the baseline. The
# authors' last epochs with one crop per image are not reproduced.
_base_ = './fkd_resnet18-w4_digits.py'

_num_crops = 4
_passes = 20 // _num_crops
_label_root = '{{$DIGIT_CROPS_ROOT:data/digit_crops}}'.rstrip('/') + \
    '/fkd_labels'

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
train_cfg = dict(max_epochs=_passes, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=_passes))
