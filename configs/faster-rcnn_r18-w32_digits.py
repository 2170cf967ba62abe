# Teacher of the Faster R-CNN family of the efficacy benchmark (tools/demo.py,
# docs/efficacy.md): plain mmdet Faster R-CNN, ResNet-18 at half width
# (base_channels 32), small variant (64-channel FPN P2-P5, 64-channel heads,
# 10 classes; `digit_faster_rcnn` in _base_/digit_scenes.py), backbone from random
# init (nothing can be downloaded here). The family's data and schedule are
# set here once: its student (faster-rcnn_r18-w8_digits.py) inherits this file and
# every distillation config of the family inherits the student's.
# Run: python tools/train.py configs/faster-rcnn_r18-w32_digits.py
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/digit_scenes.py'
]

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = {{_base_.digit_faster_rcnn.teacher}}

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
