# BCKD (bckd_gfl_r101_r50.py) on the GFL family of the efficacy benchmark
# (tools/demo.py, docs/efficacy.md): teacher gfl_r18-w32_digits.py (its
# checkpoint: the benchmark passes it as model.teacher_ckpt), student
# gfl_r18-w8_digits.py; this file inherits the student's config (data and
# schedule) and only replaces the model. Classification KD + GIoU
# localization KD with the paper's weights, nothing rescaled.
_base_ = './gfl_r18-w8_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::gfl_r18-w32_digits.py'),
    student=dict(
        cfg_path='mmkd_plugin::gfl_r18-w8_digits.py',
        bbox_head=dict(
            type='BCKDGFLHead',
            loss_bckd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0),
            loss_bckd_bbox=dict(type='GIoUKDLoss', eps=1e-6, loss_weight=4.0),
            bckd_skip_levels_without_pos=True,
            loss_ld=None)),
    teacher_ckpt=None,
    distill=[])

custom_hooks = {{_base_.digit_scenes.distill_hooks_paper_weights}}
