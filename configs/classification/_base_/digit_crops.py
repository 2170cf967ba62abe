# The project's generated classification proxy (tools/make_digit_crops.py):
# 32 px crops of one handwritten digit on clutter, 10 classes, mmpretrain's
# CustomDataset format, with a short epoch schedule sized for a CPU. The
# digits configs (configs/classification/digits/) inherit this file through
# the teacher's config: student configs inherit the teacher's, distillation
# configs the student's.
#
# Data root: `data/digit_crops/` (relative to the working directory), or the
# environment variable DIGIT_CROPS_ROOT when it is set (the same rule as
# configs/_base_/digit_scenes.py: a base's variables are resolved before a
# child is read). `--cfg-options {train,val,test}_dataloader.dataset.
# data_root=...` works too: nothing else holds a path.
#
# Schedule: 20 epochs, SGD lr 0.05 (batch 64), momentum 0.9, weight decay
# 5e-4, cosine to 0 by epoch (T_max = max_epochs: change both together),
# validation every 5 epochs. Augmentation: a random-resized crop of 64-100%
# of the area; no flip (a mirrored digit is another glyph). Images are read
# as BGR and converted to RGB by the preprocessor.
_base_ = 'mmpretrain::_base_/default_runtime.py'

_data_root = '{{$DIGIT_CROPS_ROOT:data/digit_crops}}'.rstrip('/') + '/'
_image_size = 32
_max_epochs = 20
_metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))

data_preprocessor = dict(
    num_classes=10,
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # A random-resized crop (not CIFAR's padded crop) so that FKD can store
    # and replay the crops; at least 64% of the area keeps the digit whole
    # enough to read. No flip: digits are not mirror-symmetric.
    dict(type='RandomResizedCrop', scale=_image_size,
         crop_ratio_range=(0.64, 1.0)),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]


def _dataset(split, pipeline):
    return dict(
        type='CustomDataset',
        data_root=_data_root,
        ann_file=f'annotations/{split}.txt',
        data_prefix='',
        metainfo=_metainfo,
        pipeline=pipeline)


train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=_dataset('train', train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_dataset('val', test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=_max_epochs,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=_max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=_max_epochs,
                    max_keep_ckpts=1))
randomness = dict(seed=0)
