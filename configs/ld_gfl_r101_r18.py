# LD (Zheng et al., "Localization Distillation for Dense Object Detection",
# CVPR 2022, arXiv 2102.12252): GFL R101 ms-2x teacher (44.7) -> GFL R18,
# COCO 1x. Main LD only: T 10, weight 0.25, on the student's ATSS positives
# weighted by its max class score; reference reduction (bin mean, / 4).
# Published (COCO val): GFL R18 35.8 -> 36.5 with main LD.
# Data, schedule and runtime are the student's mmdet config (GFL R50 1x,
# whose model is overridden to R18 below, as mmdet's own LD R18 config does).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
        backbone=dict(
            depth=18,
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512]),
        bbox_head=dict(
            type='LDGFLHead',
            loss_ld=dict(type='LDLoss', temperature=10.0, loss_weight=0.25))),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[])

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
