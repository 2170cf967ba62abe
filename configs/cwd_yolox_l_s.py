# YOLOX-l teacher -> YOLOX-s student, COCO, 300 epochs, with the RTMDet
# distillation recipe (cwd_rtmdet_m_s.py): CWD on the standardised outputs
# of the neck's 1x1 output convs neck.out_convs.{0,1,2}.conv (student 128
# channels, teacher 256; student 1x1 align conv without bias), tau 1,
# loss_weight 1 per level; no distillation in the last, no-mosaic stage.
# NO PUBLISHED ROW for this pair and NOT RUN HERE (CPU only): the loss weight
# is the RTMDet recipe's, untuned for YOLOX. Baselines in mmdet's model zoo
# (COCO val box AP): YOLOX-s 40.5 (the student's config), YOLOX-l 49.4 (the
# teacher's checkpoint).
# Hooks as in mmdet's YOLOX config: YOLOXModeSwitchHook (drops Mosaic,
# RandomAffine and MixUp and switches on the L1 loss of the student's head
# from runner.epoch + 1 >= 300 - 15, i.e. from epoch index 284), SyncNormHook,
# EMA (momentum 1e-4); StopDistillHook stops distilling at the same epoch.
# Data, schedule and runtime are the student's mmdet config.
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/yolox/yolox_l_8x8_300e_coco/yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::yolox/yolox_s_8xb8-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::yolox/yolox_l_8xb8-300e_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[
        dict(
            student=f'neck.out_convs.{level}.conv',
            name='cwd',
            loss=dict(type='CWDLoss', tau=1.0, loss_weight=1.0,
                      standardize=True)) for level in range(3)
    ])

# The align convs get no gradient once distillation stops.
find_unused_parameters = True

custom_hooks = [
    dict(
        type='YOLOXModeSwitchHook',
        num_last_epochs=_base_.num_last_epochs,
        priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        priority=49),
    dict(
        type='StopDistillHook',
        stop_epoch=_base_.max_epochs - _base_.num_last_epochs - 1),
]
