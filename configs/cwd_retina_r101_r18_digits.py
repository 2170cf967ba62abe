# cwd_retina_r101_r18.py at small scale on the generated digit scenes
# (python tools/make_digit_scenes.py): 10 classes, 128x128 images, CPU
# schedule. Give the teacher's checkpoint, trained on the same data, with
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_1000.pth
_base_ = ['./cwd_retina_r101_r18.py', './_base_/digit_scenes.py']

model = dict(
    student=dict(bbox_head=dict(num_classes=10)),
    teacher=dict(bbox_head=dict(num_classes=10)),
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
