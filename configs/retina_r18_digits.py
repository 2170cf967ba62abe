# Student baseline of the digit-scenes demo (tools/demo.py): plain mmdet
# RetinaNet R18, small variant (64-channel FPN P2-P5, 2-conv 64-channel head,
# 10 classes; see `digit_retina` in _base_/digit_scenes.py), trained from
# scratch: the backbone has init_cfg=None (random init, nothing can be
# downloaded here). Same data and schedule as the teacher and the distilled
# students: 1000 iterations of 8 images, AdamW 2e-3.
# Run: python tools/train.py configs/retina_r18_digits.py
_base_ = [
    'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    './_base_/digit_scenes.py'
]

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = {{_base_.digit_retina.r18}}

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
