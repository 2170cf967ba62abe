# The LD run of tools/demo.py (--methods ld) on the generated digit scenes:
# the paper's full LD setting, i.e. configs/ld_gfl_r101_r50.py (main LD +
# VLR LD + classification KD on the positives, the paper's temperatures and
# weights, nothing rescaled), with both models swapped for the small GFL
# variants of _base_/digit_scenes.py (`digit_gfl`): teacher GFL R50 (the
# checkpoint of configs/gfl_r50_digits.py), student GFL R18, both 64-channel
# FPN P2-P5 + 2-conv head, 10 classes, random-init backbones.
#
# Chosen on the holdout split (seed 0, 500 iterations; COCO mAP):
#   GFL R18 baseline                                        58.5
#   main LD only (configs/ld_gfl_r101_r18.py's setting)     57.8
#   main LD + VLR, no classification KD                     55.4
#   classification KD only                                  65.0
#   main LD + VLR + classification KD (this config)         70.8
# On digit scenes the teacher-student gap is mostly not box precision
# (missed or misclassified digits): the box-side LD terms alone do not
# help, classification KD does, and LD adds to it. One seed per row; the
# GFL baseline's seed spread is large (59.8 / 45.2 / 60.7 val mAP over
# seeds 0-2). These rows were measured before the head followed the
# authors' code in two places (classification KD averaged per FPN level,
# VLR DIoU with the intersection over the anchor's area) and have not been
# re-run since.
#
# Give the teacher's checkpoint (tools/demo.py does) with
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_<n>.pth
_base_ = ['./ld_gfl_r101_r50.py', './_base_/digit_scenes.py']

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
