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
_base_ = [
    './cwd_yolox_l_s.py', './_base_/digit_scenes.py',
    './_base_/digit_modern.py'
]

model = dict(
    teacher={{_base_.digit_yolox.teacher_l}},
    student={{_base_.digit_yolox.student_s}},
    teacher_ckpt=None)

num_last_epochs = 1
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            _base_.digit_scenes.train_dataloader.dataset,
            pipeline=_base_.digit_yolox.load_pipeline),
        pipeline=_base_.digit_yolox.mix_pipeline))
val_dataloader = {{_base_.digit_scenes.val_dataloader}}
test_dataloader = {{_base_.digit_scenes.test_dataloader}}
val_evaluator = {{_base_.digit_scenes.val_evaluator}}
test_evaluator = {{_base_.digit_scenes.test_evaluator}}
train_cfg = {{_base_.digit_epochs.train_cfg}}
param_scheduler = {{_base_.digit_epochs.param_scheduler}}
optim_wrapper = {{_base_.digit_scenes.optim_wrapper}}
default_hooks = {{_base_.digit_epochs.default_hooks}}
log_processor = {{_base_.digit_epochs.log_processor}}
auto_scale_lr = {{_base_.digit_scenes.auto_scale_lr}}

custom_hooks = [
    dict(
        type='YOLOXModeSwitchHook',
        num_last_epochs=num_last_epochs,
        priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49),
    dict(
        type='StopDistillHook',
        stop_epoch=_base_.digit_epochs.max_epochs - num_last_epochs - 1),
]
