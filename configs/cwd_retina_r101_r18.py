# CWD (Shu et al., ICCV 2021): RetinaNet R101 1x teacher -> RetinaNet R18,
# COCO 1x. Loss on all 5 FPN levels, tau 1, loss_weight 10 (paper defaults).
# Data, schedule and runtime are the student's mmdet config.
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[
        dict(
            student='neck',
            teacher='neck',
            loss=dict(type='CWDLoss', tau=1.0, loss_weight=10.0)),
    ])

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
