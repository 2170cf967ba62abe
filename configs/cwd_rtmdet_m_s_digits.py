# cwd_rtmdet_m_s.py (the RTMDet distillation recipe) at small scale on the
# generated digit scenes (tools/make_digit_scenes.py). Both models are the
# small digit RTMDets of _base_/digit_modern.py (`digit_rtmdet`): teacher
# "m" (CSPNeXt widen 0.25, neck 64 channels) -> student "s" (widen 0.125,
# neck 32), 10 classes, random-init backbones (nothing is downloaded). Same
# recipe: standardised CWD on neck.out_convs.{0,1,2}.conv (align conv 32 ->
# 64 without bias), tau 1, loss_weight 1 per level (the published weight,
# not tuned at this scale); 4 epochs of 250 iterations (2000 images, batch
# 8), the last one (epoch index 3) with the stage-2 pipeline
# (PipelineSwitchHook) and without distillation (StopDistillHook); EMA.
# No result of this config is reported: it was trained here only for a few
# iterations by tests/test_modern_detectors.py. Teacher config:
# rtmdet_m_digits.py; give its checkpoint with
#   --cfg-options model.teacher_ckpt=work_dirs/rtmdet_m_digits/epoch_4.pth
_base_ = [
    './cwd_rtmdet_m_s.py', './_base_/digit_scenes.py',
    './_base_/digit_modern.py'
]

model = dict(
    teacher={{_base_.digit_rtmdet.teacher_m}},
    student={{_base_.digit_rtmdet.student_s}},
    teacher_ckpt=None)

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
    dict(type='StopDistillHook', stop_epoch=_base_.digit_epochs.stage2_epoch),
]
