# cwd_yolox_l_s.py at small scale on the generated digit scenes
# (tools/make_digit_scenes.py). Both models are the small digit YOLOXs of
# _base_/digit_modern.py (`digit_yolox`): teacher "l" (CSPDarknet widen
# 0.25, neck 64 channels) -> student "s" (widen 0.125, neck 32), 10
# classes, random init. Standardised CWD on neck.out_convs.{0,1,2}.conv
# (align conv 32 -> 64 without bias), tau 1, loss_weight 1 per level
# (untuned: no published row for YOLOX). 4 epochs of 250 iterations;
# YOLOXModeSwitchHook(num_last_epochs=1) drops Mosaic, RandomAffine and
# MixUp and switches on the L1 loss from epoch index 2 ((epoch + 1) >= 4 - 1),
# where StopDistillHook stops distilling; SyncNormHook and EMA as in mmdet's
# YOLOX config. No result of this config is reported: it was trained here
# only for a few iterations by tests/test_modern_detectors.py. Teacher
# config: yolox_l_digits.py; give its checkpoint with
#   --cfg-options model.teacher_ckpt=work_dirs/yolox_l_digits/epoch_4.pth
# This file inherits the teacher's config (data, schedule, mode switch, EMA)
# and replaces the model.
_base_ = './yolox_l_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::yolox_l_digits.py'),
    student={{_base_.digit_yolox.student_s}},
    teacher_ckpt=None,
    # As in cwd_yolox_l_s.py.
    distill=[
        dict(
            student=f'neck.out_convs.{level}.conv',
            name='cwd',
            loss=dict(type='CWDLoss', tau=1.0, loss_weight=1.0,
                      standardize=True)) for level in range(3)
    ])

find_unused_parameters = True

custom_hooks = _base_.custom_hooks + [
    dict(type='StopDistillHook', stop_epoch=_base_.digit_epochs.max_epochs - _base_.num_last_epochs - 1),
]
