# Teacher of cwd_yolox_l_s_digits.py: plain mmdet YOLOX, the small digit
# "l" of _base_/digit_modern.py (CSPDarknet widen 0.25, neck 64 channels,
# 10 classes), random init, with YOLOX's hooks at digit scale: 4 epochs of
# 250 iterations, YOLOXModeSwitchHook(num_last_epochs=1) at epoch index 2,
# SyncNormHook, EMA. Not run here.
# Run: python tools/train.py configs/yolox_l_digits.py
_base_ = [
    'mmdet::yolox/yolox_s_8xb8-300e_coco.py', './_base_/digit_scenes.py',
    './_base_/digit_modern.py'
]

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = {{_base_.digit_yolox.l}}

num_last_epochs = 1
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            _base_.digit_scenes.train_dataloader.dataset,
            pipeline=_base_.digit_yolox.load_pipeline),
        pipeline=_base_.digit_yolox.mix_pipeline))
val_dataloader = {{_base_.digit_scenes.val_dataloader}}
test_dataloader = {{_base_.digit_scenes.test_dataloader}}
val_evaluator = {{_base_.digit_scenes.val_evaluator}}
test_evaluator = {{_base_.digit_scenes.test_evaluator}}
train_cfg = {{_base_.digit_epochs.train_cfg}}
param_scheduler = {{_base_.digit_epochs.param_scheduler}}
optim_wrapper = {{_base_.digit_scenes.optim_wrapper}}
default_hooks = {{_base_.digit_epochs.default_hooks}}
log_processor = {{_base_.digit_epochs.log_processor}}
auto_scale_lr = {{_base_.digit_scenes.auto_scale_lr}}

custom_hooks = [
    dict(
        type='YOLOXModeSwitchHook',
        num_last_epochs=num_last_epochs,
        priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49),
]
