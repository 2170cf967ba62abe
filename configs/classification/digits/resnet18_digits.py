# Teacher of the digit-crops classification proxy (tools/make_digit_crops.py,
# _base_/digit_crops.py): mmpretrain's CIFAR ResNet-18 (3x3 stride-1 stem,
# no max-pool: stages at 32, 16, 8 and 4 px for 32 px inputs) at a quarter of
# the standard width (16 to 128 channels), random init, 10 classes. The width
# keeps a 20-epoch teacher run at about half an hour on one CPU core. Its student (resnet18-w4_digits.py) inherits this file and the
# distillation configs inherit the student's.
# Run: python tools/train.py configs/classification/digits/resnet18_digits.py
_base_ = '../_base_/digit_crops.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
