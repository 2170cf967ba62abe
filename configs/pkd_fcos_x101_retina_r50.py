# PKD (Cao et al., NeurIPS 2022), heterogeneous pair: FCOS X101-64x4d
# ms-2x teacher (42.6) -> RetinaNet R50 1x (36.5), COCO 1x. Published:
# 36.5 -> 40.3. loss weight 10 on the first 4 FPN levels. The two detectors
# differ in head and extra FPN levels; PKD's per-channel standardisation
# makes their feature scales comparable.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco/fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco-ede514a8.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[
        dict(
            student='neck',
            teacher='neck',
            levels=[0, 1, 2, 3],
            loss=dict(type='PKDLoss', loss_weight=10.0)),
    ])

# Before training, the teacher's COCO mAP on the first 20 val images (a wrong
# teacher_ckpt scores near 0: warned below 0.1) and the distillation /
# detection loss ratio of the first 10 iterations (logged; no expected range:
# the loss weights are the papers').
custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
