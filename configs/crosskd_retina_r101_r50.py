# CrossKD (Wang et al., CVPR 2024, arXiv 2306.11369): RetinaNet R101 2x
# teacher (38.9) -> RetinaNet R50, COCO 2x (SGD lr 0.01, 16 images).
# Hold after the 3rd of 4 tower convs; the teacher's 4th conv and
# predictors (RetinaNet has no Scales) give the cross-head outputs.
# Quality-focal KD on the classes (beta 1, weight 1, label weights, /
# positives of this GPU) and GIoU between the boxes decoded from the
# teacher's and cross-head deltas on the student's anchors, weighted by the
# teacher's max class score and the label weights, / positives, weight 1.
# Published (COCO val): RetinaNet R50 2x 37.4 -> 39.7.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
        bbox_head=dict(
            type='CrossKDRetinaHead',
            reused_teacher_head_idx=3,
            loss_crosskd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=1.0),
            loss_crosskd_bbox=dict(type='GIoUKDLoss', loss_weight=1.0))),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[])

auto_scale_lr = dict(enable=False, base_batch_size=16)

custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
