# DKD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022) on the
# RoI classifier: Faster R-CNN R101 teacher -> Faster R-CNN R18, COCO 1x.
# The teacher's RoI head runs on the student's sampled RoIs (512 per image)
# over the teacher's features; DKD on the 81-way logits with the sampled
# labels (background included): alpha 1, beta 0.25, T 1, no warm-up.
# Teacher: mmdet faster-rcnn_r101_fpn_ms-3x_coco (41.8), the zoo model
# closest to the paper's R101 teacher (42.04).
# Published (paper): R101 (42.04) -> R18 33.26 -> 35.05.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_mstrain_3x_coco/faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        backbone=dict(
            depth=18,
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512]),
        roi_head=dict(
            type='DistillRoIHead',
            distill_loss=dict(
                type='DKDLoss', alpha=1.0, beta=0.25, temperature=1.0))),
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py'),
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
