# RTMDet distillation, teacher RTMDet-l -> student RTMDet-m, COCO, 300
# epochs: the recipe of cwd_rtmdet_m_s.py (read its header) with the
# channels of this pair (student 192 -> teacher 256).
# Published (mmyolo configs/rtmdet/distillation, COCO val box AP): teacher
# RTMDet-l 51.4; student RTMDet-m 49.3 -> 50.2 distilled. NOT RUN HERE (CPU
# only). The teacher checkpoint is mmdet's RTMDet-l (51.3 in mmdet's model
# zoo), not mmyolo's.
_base_ = 'mmdet::rtmdet/rtmdet_m_8xb32-300e_coco.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_l_8xb32-300e_coco/rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth'  # noqa: E501
stop_distill_epoch = 280

model = dict(
    _delete_=True,
    type='DistillationDetector',
    student=dict(cfg_path='mmdet::rtmdet/rtmdet_m_8xb32-300e_coco.py'),
    teacher=dict(cfg_path='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill=[
        dict(
            student=f'neck.out_convs.{level}.conv',
            name='cwd',
            loss=dict(type='CWDLoss', tau=1.0, loss_weight=1.0,
                      standardize=True)) for level in range(3)
    ])

# The align convs get no gradient once distillation stops.
find_unused_parameters = True

custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=_base_.max_epochs - _base_.stage2_num_epochs,
        switch_pipeline=_base_.train_pipeline_stage2),
    dict(type='StopDistillHook', stop_epoch=stop_distill_epoch),
]
