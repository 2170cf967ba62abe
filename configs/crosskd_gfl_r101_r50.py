# CrossKD (Wang et al., "CrossKD: Cross-Head Knowledge Distillation for
# Object Detection", CVPR 2024, arXiv 2306.11369): GFL R101 ms-2x teacher
# (44.7 in the mmdet zoo) -> GFL R50, COCO 1x (SGD lr 0.01, 16 images).
# The student's head feature after its 3rd of 4 tower convs (before the
# ReLU), standardised to the teacher's statistics there, runs through the
# teacher's 4th tower conv, predictors and Scales; the cross-head outputs are
# distilled to the teacher's: quality-focal KD on the classes (beta 1, weight
# 1, label weights, / positives) and KL on the box-side distributions (T 1,
# summed over the bins, weighted by the teacher's max score, / 4 / sum of
# those scores, weight 4). See mmkd_plugin/models/dense_heads/crosskd_head.py.
# Published (COCO val): GFL R50 1x 40.2 -> 43.7.
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
        bbox_head=dict(
            type='CrossKDGFLHead',
            reused_teacher_head_idx=3,
            loss_crosskd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0),
            loss_crosskd_bbox=dict(
                type='LDLoss', temperature=1.0, loss_weight=4.0,
                normalize='constant', divisor=4.0, bin_reduction='sum'))),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[])

auto_scale_lr = dict(enable=False, base_batch_size=16)

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
