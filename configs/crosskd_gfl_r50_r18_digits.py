# CrossKD on the generated digit scenes (for the efficacy benchmark):
# configs/crosskd_gfl_r101_r50.py (the paper's GFL losses and weights,
# nothing rescaled) with both models swapped for the small GFL variants of
# _base_/digit_scenes.py (`digit_gfl`): teacher GFL R50 (the checkpoint of
# configs/gfl_r50_digits.py), student GFL R18, both 64-channel FPN P2-P5 and
# a 2-conv head, 10 classes, random-init backbones. With 2 tower convs the
# hold is after the 1st (reused_teacher_head_idx=1), so that, as in the
# paper's 4-conv heads at idx 3, the teacher contributes one tower conv and
# its predictors. Not run yet.
#
# Give the teacher's checkpoint (tools/demo.py does) with
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_<n>.pth
_base_ = ['./crosskd_gfl_r101_r50.py', './_base_/digit_scenes.py']

model = dict(
    teacher={{_base_.digit_gfl.teacher_r50}},
    # digit_gfl.student_r18, spelled out to add reused_teacher_head_idx.
    student=dict(
        backbone={{_base_.digit_gfl.student_r18.backbone}},
        neck={{_base_.digit_gfl.student_r18.neck}},
        bbox_head=dict(
            reused_teacher_head_idx=1,
            num_classes={{_base_.digit_gfl.student_r18.bbox_head.num_classes}},
            in_channels={{_base_.digit_gfl.student_r18.bbox_head.in_channels}},
            feat_channels={{_base_.digit_gfl.student_r18.bbox_head.feat_channels}},  # noqa: E501
            stacked_convs={{_base_.digit_gfl.student_r18.bbox_head.stacked_convs}},  # noqa: E501
            anchor_generator={{_base_.digit_gfl.student_r18.bbox_head.anchor_generator}})),  # noqa: E501
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
