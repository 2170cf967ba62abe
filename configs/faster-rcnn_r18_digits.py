# Student baseline of the DKD pair of the digit-scenes demo (tools/demo.py
# --methods dkd): plain mmdet Faster R-CNN R18, small variant (64-channel FPN
# P2-P5, 10 classes; see `digit_faster_rcnn` in _base_/digit_scenes.py),
# backbone from random init (init_cfg=None: nothing can be downloaded here).
# Same data and schedule as the other demo runs (the demo sets the iteration
# count).
# Run: python tools/train.py configs/faster-rcnn_r18_digits.py
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/digit_scenes.py'
]

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = {{_base_.digit_faster_rcnn.r18}}

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
