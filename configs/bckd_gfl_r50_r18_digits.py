# The BCKD setting of configs/bckd_gfl_r101_r50.py (classification KD +
# GIoU localization KD, the paper's weights, nothing rescaled) on the
# generated digit scenes, with both models swapped for the small GFL
# variants of _base_/digit_scenes.py (`digit_gfl`): teacher GFL R50 (the
# checkpoint of configs/gfl_r50_digits.py), student GFL R18, both 64-channel
# FPN P2-P5 + 2-conv head, 10 classes, random-init backbones.
# Not run yet (no numbers).
#
# Give the teacher's checkpoint with
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_<n>.pth
_base_ = ['./bckd_gfl_r101_r50.py', './_base_/digit_scenes.py']

model = dict(
    teacher={{_base_.digit_gfl.teacher_r50}},
    student={{_base_.digit_gfl.student_r18}},
    teacher_ckpt=None)

train_dataloader = {{_base_.digit_scenes.train_dataloader}}
val_dataloader = {{_base_.digit_scenes.val_dataloader}}
test_dataloader = {{_base_.digit_scenes.test_dataloader}}
val_evaluator = {{_base_.digit_scenes.val_evaluator}}
test_evaluator = {{_base_.digit_scenes.test_evaluator}}
train_cfg = {{_base_.digit_scenes.train_cfg}}
param_scheduler = {{_base_.digit_scenes.param_scheduler}}
optim_wrapper = {{_base_.digit_scenes.optim_wrapper}}
default_hooks = {{_base_.digit_scenes.default_hooks}}
log_processor = {{_base_.digit_scenes.log_processor}}
auto_scale_lr = {{_base_.digit_scenes.auto_scale_lr}}
custom_hooks = {{_base_.digit_scenes.distill_hooks_paper_weights}}
