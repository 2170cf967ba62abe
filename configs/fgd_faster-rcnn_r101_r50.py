# FGD (Yang et al., CVPR 2022): Faster R-CNN R101 2x teacher (39.8) ->
# Faster R-CNN R50 2x (38.4), COCO 2x. Faster R-CNN defaults on the 4 FPN
# levels P2-P5. (The paper's 38.4 -> 42.0 used a Cascade Mask R-CNN X101-DCN
# teacher; this config uses the mmdet-zoo R101 Faster R-CNN.) The student
# starts from the teacher's neck, RPN and RoI heads.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    student_init_from_teacher=['neck', 'rpn_head', 'roi_head'],
    distill=[
        dict(
            student='neck',
            teacher='neck',
            levels=[0, 1, 2, 3],
            loss=dict(
                type='FGDLoss',
                temp=0.5,
                alpha_fgd=5e-5,
                beta_fgd=2.5e-5,
                gamma_fgd=5e-5,
                lambda_fgd=5e-7)),
    ])

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
