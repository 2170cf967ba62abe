# Teacher of cwd_rtmdet_m_s_digits.py: plain mmdet RTMDet, the small digit
# "m" of _base_/digit_modern.py (CSPNeXt widen 0.25, neck 64 channels, 10
# classes), trained from scratch (random-init backbone) with RTMDet's two
# stages and EMA at digit scale: 4 epochs of 250 iterations, the last one
# with the stage-2 pipeline. Not run here.
# Run: python tools/train.py configs/rtmdet_m_digits.py
_base_ = [
    'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py', './_base_/digit_scenes.py',
    './_base_/digit_modern.py'
]

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = {{_base_.digit_rtmdet.m}}

train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        _base_.digit_scenes.train_dataloader.dataset,
        pipeline=_base_.digit_rtmdet.train_pipeline))
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
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=_base_.digit_epochs.stage2_epoch,
        switch_pipeline=_base_.digit_rtmdet.train_pipeline_stage2),
]
