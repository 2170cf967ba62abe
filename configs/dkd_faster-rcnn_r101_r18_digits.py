# dkd_faster-rcnn_r101_r18.py at small scale on the generated digit scenes,
# the DKD run of tools/demo.py (--methods dkd). Same method as the COCO
# config it inherits (DistillRoIHead: DKD on the C+1 logits of the student's
# sampled RoIs, alpha 1, beta 0.25, T 1), but both models are the small
# Faster R-CNN variants of _base_/digit_scenes.py (`digit_faster_rcnn`):
# teacher R50 (the checkpoint of configs/faster-rcnn_r50_digits.py),
# student R18, 64-channel FPN P2-P5, 10 classes, random-init backbones.
# Give the teacher's checkpoint (tools/demo.py does) with
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_<n>.pth
_base_ = ['./dkd_faster-rcnn_r101_r18.py', './_base_/digit_scenes.py']

model = dict(
    teacher={{_base_.digit_faster_rcnn.teacher_r50}},
    student={{_base_.digit_faster_rcnn.student_r18}},
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
