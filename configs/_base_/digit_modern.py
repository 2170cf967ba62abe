# RTMDet and YOLOX at the scale of the generated digit scenes (128x128, 10
# classes; data in _base_/digit_scenes.py), with their own two-stage
# training: a mosaic stage, then a last stage without mosaic switched by
# mmdet's PipelineSwitchHook (RTMDet) or YOLOXModeSwitchHook (YOLOX). Used
# with _base_/digit_scenes.py (data root, val loader, evaluator) by the
# *_digits.py configs of RTMDet and YOLOX.
#
# Everything sits under `digit_rtmdet`, `digit_yolox` and `digit_epochs`
# (mmengine forbids the same key in two sibling bases). Models: random-init
# backbones (nothing is downloaded), BatchNorm (not SyncBN), one CSP block
# per stage; "teacher" widen 0.25 (neck 64 channels), "student" widen 0.125
# (neck 32 channels), the 2:1 ratio of the COCO pairs (m 192 / s 128 is
# 3:2). Flips are left out: mirrored digits are other glyphs.
_modern_size = (128, 128)


def _rtmdet_model(widen):
    channels = [int(c * widen) for c in (256, 512, 1024)]
    norm_cfg = dict(type='BN')
    return dict(
        backbone=dict(
            deepen_factor=0.167,
            widen_factor=widen,
            norm_cfg=norm_cfg,
            init_cfg=None),
        neck=dict(
            in_channels=channels,
            out_channels=channels[0],
            num_csp_blocks=1,
            norm_cfg=norm_cfg),
        bbox_head=dict(
            num_classes=10,
            in_channels=channels[0],
            feat_channels=channels[0],
            norm_cfg=norm_cfg,
            exp_on_reg=False),
        test_cfg=dict(nms_pre=1000, max_per_img=100))


def _yolox_model(widen):
    channels = [int(c * widen) for c in (256, 512, 1024)]
    return dict(
        data_preprocessor=dict(batch_augments=[
            dict(type='BatchSyncRandomResize', random_size_range=(96, 160),
                 size_divisor=32, interval=10)
        ]),
        backbone=dict(deepen_factor=0.33, widen_factor=widen),
        neck=dict(in_channels=channels, out_channels=channels[0]),
        bbox_head=dict(
            num_classes=10,
            in_channels=channels[0],
            feat_channels=channels[0]))


_rtmdet_stage1 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=_modern_size, pad_val=114.0,
         max_cached_images=20),
    dict(type='RandomResize', scale=(256, 256), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=_modern_size),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='Pad', size=_modern_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='CachedMixUp', img_scale=_modern_size, ratio_range=(1.0, 1.0),
         max_cached_images=10, pad_val=(114, 114, 114)),
    dict(type='PackDetInputs')
]
_rtmdet_stage2 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=_modern_size, ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=_modern_size),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='Pad', size=_modern_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
_rtmdet_cfg = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'
digit_rtmdet = dict(
    # `model = {{_base_.digit_rtmdet.m}}` in a config inheriting
    # `_rtmdet_cfg`; student_s for DistillationDetector (the teacher is
    # `mmkd_plugin::rtmdet_m_digits.py`).
    m=_rtmdet_model(0.25),
    s=_rtmdet_model(0.125),
    student_s=dict(cfg_path=_rtmdet_cfg, **_rtmdet_model(0.125)),
    train_pipeline=_rtmdet_stage1,
    train_pipeline_stage2=_rtmdet_stage2,
)

# YOLOX: MultiImageMixDataset around the digit-scenes train set (built in
# the configs from digit_scenes.train_dataloader), its mix pipeline here;
# YOLOXModeSwitchHook drops Mosaic, RandomAffine and MixUp at the switch.
_yolox_mix_pipeline = [
    dict(type='Mosaic', img_scale=_modern_size, pad_val=114.0),
    dict(type='RandomAffine', scaling_ratio_range=(0.5, 1.5),
         border=(-_modern_size[0] // 2, -_modern_size[1] // 2)),
    dict(type='MixUp', img_scale=_modern_size, ratio_range=(0.8, 1.6),
         pad_val=114.0),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='Resize', scale=_modern_size, keep_ratio=True),
    dict(type='Pad', pad_to_square=True,
         pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
_yolox_cfg = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
digit_yolox = dict(
    l=_yolox_model(0.25),
    s=_yolox_model(0.125),
    student_s=dict(cfg_path=_yolox_cfg, **_yolox_model(0.125)),
    load_pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True)
    ],
    mix_pipeline=_yolox_mix_pipeline,
)

# Epoch schedule at CPU scale: 4 epochs of 250 iterations (2000 images,
# batch 8; the 1000 iterations of the other digit configs), the last epoch
# (index 3) being the second stage. AdamW as in digit_scenes.py.
_modern_max_epochs = 4
digit_epochs = dict(
    max_epochs=_modern_max_epochs,
    stage2_epoch=_modern_max_epochs - 1,
    train_cfg=dict(
        _delete_=True,
        type='EpochBasedTrainLoop',
        max_epochs=_modern_max_epochs,
        val_interval=_modern_max_epochs),
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=100),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=1,
             end=_modern_max_epochs, T_max=_modern_max_epochs - 1,
             eta_min=1e-5, convert_to_iter_based=True),
    ],
    default_hooks=dict(
        logger=dict(type='LoggerHook', interval=20),
        checkpoint=dict(type='CheckpointHook', by_epoch=True,
                        interval=1, max_keep_ckpts=1)),
    log_processor=dict(by_epoch=True),
)
