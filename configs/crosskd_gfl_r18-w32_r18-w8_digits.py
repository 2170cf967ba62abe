# CrossKD (crosskd_gfl_r101_r50.py: the paper's GFL losses and weights,
# nothing rescaled) on the GFL family of the efficacy benchmark
# (tools/demo.py, docs/efficacy.md): teacher gfl_r18-w32_digits.py (its
# checkpoint: the benchmark passes it as model.teacher_ckpt), student
# gfl_r18-w8_digits.py; this file inherits the student's config (data and
# schedule) and only replaces the model. With 2 tower convs the hold is
# after the 1st (reused_teacher_head_idx=1), so that, as in the paper's
# 4-conv heads at idx 3, the teacher contributes one tower conv and its
# predictors. The student's 32-channel hold reaches the teacher's 64-channel
# tower through the head's 1x1 adapters (built because the widths differ).
_base_ = './gfl_r18-w8_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::gfl_r18-w32_digits.py'),
    student=dict(
        cfg_path='mmkd_plugin::gfl_r18-w8_digits.py',
        bbox_head=dict(
            type='CrossKDGFLHead',
            reused_teacher_head_idx=1,
            loss_crosskd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0),
            loss_crosskd_bbox=dict(
                type='LDLoss', temperature=1.0, loss_weight=4.0,
                normalize='constant', divisor=4.0, bin_reduction='sum'))),
    teacher_ckpt=None,
    distill=[])

custom_hooks = {{_base_.digit_scenes.distill_hooks_paper_weights}}
