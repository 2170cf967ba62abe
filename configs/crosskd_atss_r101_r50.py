# CrossKD (Wang et al., CVPR 2024, arXiv 2306.11369): ATSS R101 1x teacher
# (41.5) -> ATSS R50, COCO 1x (SGD lr 0.01, 16 images).
# Hold after the 3rd of 4 tower convs; the teacher's 4th conv, predictors
# and Scales give the cross-head outputs. Quality-focal KD on the classes
# (beta 1, weight 1, label weights, / positives averaged over GPUs), GIoU
# between the boxes decoded (ATSS coder, stds 0.1, 0.1, 0.2, 0.2) from the
# teacher's and cross-head deltas, weighted by the teacher's max class score
# and the label weights, / the same count, weight 1; centerness KD:
# BCE-with-logits to the teacher's sigmoid centerness on the student's
# positives, / the same count, weight 1.
# Published (COCO val): ATSS R50 1x 39.4 -> 41.8.
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/atss/atss_r101_fpn_1x_coco/atss_r101_fpn_1x_20200825-dfcadd6f.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::atss/atss_r50_fpn_1x_coco.py',
        bbox_head=dict(
            type='CrossKDATSSHead',
            reused_teacher_head_idx=3,
            loss_crosskd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0),
            loss_crosskd_bbox=dict(type='GIoUKDLoss', loss_weight=1.0),
            loss_crosskd_centerness=dict(
                type='QualityFocalKDLoss', beta=0.0, loss_weight=1.0))),
    teacher=dict(cfg_path='mmdet::atss/atss_r101_fpn_1x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[])

auto_scale_lr = dict(enable=False, base_batch_size=16)

custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
