# CrossKD (Wang et al., CVPR 2024, arXiv 2306.11369): FCOS R101-caffe
# ms-2x teacher (40.8) -> FCOS R50-caffe, COCO ms-2x (24 epochs,
# multi-scale 640-800, bias lr x2, grad clip 35; SGD lr 0.01, 16 images).
# Hold after the 2nd of 4 tower convs; the teacher's 3rd and 4th convs,
# predictors and Scales (exp of the scaled output, centerness on the cls
# branch as the teacher says) give the cross-head outputs. Quality-focal KD
# on the classes (beta 1, no label weights, / the positives' centerness
# targets summed, averaged over GPUs, at least 1e-6), weight 0.4; IoU loss
# (-log IoU) between the boxes decoded from the points for teacher and
# cross head, weighted by the teacher's max class score, / the same sum,
# weight 0.75.
# Published (COCO val): FCOS R50 ms-2x 38.5 -> 41.1.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/fcos/fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco/fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco-511424d6.pth'  # noqa: E501

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(
        cfg_path='mmdet::fcos/'
        'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py',
        bbox_head=dict(
            type='CrossKDFCOSHead',
            reused_teacher_head_idx=2,
            loss_crosskd_cls=dict(
                type='QualityFocalKDLoss', beta=1.0, loss_weight=0.4),
            loss_crosskd_bbox=dict(type='IoULoss', loss_weight=0.75))),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[])

auto_scale_lr = dict(enable=False, base_batch_size=16)

custom_hooks = [
    dict(type='TeacherSanityHook', num_batches=20, min_map=0.1,
         ratio_iters=10)
]
