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
# This file inherits the teacher's config (data, schedule, EMA and pipeline
# switch) and replaces the model.
_base_ = './rtmdet_m_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::rtmdet_m_digits.py'),
    student={{_base_.digit_rtmdet.student_s}},
    teacher_ckpt=None,
    # As in cwd_rtmdet_m_s.py.
    distill=[
        dict(
            student=f'neck.out_convs.{level}.conv',
            name='cwd',
            loss=dict(type='CWDLoss', tau=1.0, loss_weight=1.0,
                      standardize=True)) for level in range(3)
    ])

find_unused_parameters = True

custom_hooks = _base_.custom_hooks + [
    dict(type='StopDistillHook', stop_epoch=_base_.digit_epochs.stage2_epoch),
]
