# FGD (Yang et al., CVPR 2022), paper set-up: RetinaNet X101-64x4d 1x
# teacher (41.0) -> RetinaNet R50 2x, COCO 2x. Published: 37.4 -> 40.7.
# RetinaNet defaults on all 5 FPN levels; student starts from the teacher's
# neck and head, as the reference configs do.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    student_init_from_teacher=['neck', 'bbox_head'],
    distill=[
        dict(
            student='neck',
            teacher='neck',
            loss=dict(
                type='FGDLoss',
                temp=0.5,
                alpha_fgd=1e-3,
                beta_fgd=5e-4,
                gamma_fgd=5e-4,
                lambda_fgd=5e-6)),
    ])

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
