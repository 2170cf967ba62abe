# The project's generated dataset (tools/make_digit_scenes.py): square
# scenes of handwritten digits, 10 classes, COCO format, with a CPU-sized
# iteration schedule, and the small detectors of the efficacy benchmark
# (tools/demo.py, docs/efficacy.md).
#
# mmengine forbids the same key in two sibling bases, so everything sits
# under `digit_scenes` (data, schedule, runtime) and `digit_retina`,
# `digit_gfl`, `digit_faster_rcnn` (the small models, at the end). Each
# detector family has ONE config that takes the data and schedule from
# here with `key = {{_base_.digit_scenes.key}}` (retina_r18-w32_digits.py,
# gfl_r18-w32_digits.py, faster-rcnn_r18-w32_digits.py, the teachers); the
# narrower students inherit their teacher's config, and each distillation
# config inherits its student's config, so neither repeats that block.
#
# Images are used at the size they were generated (Resize by a factor of
# 1): the benchmark's proxy is 64 px (tools/demo.py), make_digit_scenes.py
# writes 64 px by default too.
#
# Data root: `data/digit_scenes/` (relative to the working directory), or
# the environment variable DIGIT_SCENES_ROOT when it is set. Every path of
# every dataloader and evaluator derives from it, so that one setting points
# a config (this repository's or one inheriting it from elsewhere) at the
# data. It is an environment variable, not a config key, because mmengine
# resolves a base file's variables before a child config is read: a child
# that redefines a `data_root` variable changes nothing in the dataloaders
# it inherits (tests/test_configs.py checks both).
_data_root = '{{$DIGIT_SCENES_ROOT:data/digit_scenes}}'.rstrip('/') + '/'
_metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
_max_iters = 1000


def _dataset(split, pipeline, test_mode):
    return dict(
        type='CocoDataset',
        data_root=_data_root,
        metainfo=_metainfo,
        ann_file=f'annotations/{split}.json',
        data_prefix=dict(img=f'{split}/'),
        test_mode=test_mode,
        filter_cfg=None if test_mode else dict(filter_empty_gt=True),
        pipeline=pipeline)


_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale_factor=1.0),
    dict(type='PackDetInputs')
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
_val_loader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_dataset('val', _test_pipeline, test_mode=True))
_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=_data_root + 'annotations/val.json',
    metric='bbox',
    format_only=False)

digit_scenes = dict(
    train_dataloader=dict(
        _delete_=True,
        batch_size=8,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=_dataset('train', _train_pipeline, test_mode=False)),
    val_dataloader=_val_loader,
    test_dataloader=_val_loader,
    val_evaluator=_evaluator,
    test_evaluator=_evaluator,
    train_cfg=dict(
        _delete_=True,
        type='IterBasedTrainLoop',
        max_iters=_max_iters,
        val_interval=_max_iters),
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=100),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=100,
             end=_max_iters, T_max=_max_iters - 100, eta_min=1e-5),
    ],
    optim_wrapper=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
        clip_grad=dict(max_norm=10.0)),
    default_hooks=dict(
        logger=dict(type='LoggerHook', interval=20),
        checkpoint=dict(type='CheckpointHook', by_epoch=False,
                        interval=_max_iters, max_keep_ckpts=1)),
    log_processor=dict(by_epoch=False),
    auto_scale_lr=dict(enable=False, base_batch_size=8),
    # `custom_hooks` of the distillation configs whose loss weights were set
    # for a distillation loss about twice the detection loss at the first
    # iteration (trained teacher, random student; FGD, CWD, MGD, PKD): the
    # teacher's mAP on the first 16 val images (warned below 0.3; the
    # benchmark's RetinaNet R18 teacher scored 0.51 on the whole 64 px val
    # split after 1500 iterations, 0.60 after 3000) and the mean loss
    # ratio of the first 10 iterations, warned outside 0.5-8 (4x off).
    distill_hooks=[
        dict(type='TeacherSanityHook', num_batches=2, min_map=0.3,
             ratio_iters=10, expected_ratio=(0.5, 8.0))
    ],
    # The same for LD and DKD, whose weights are the papers' (not set for a
    # ratio): the ratio is logged only.
    distill_hooks_paper_weights=[
        dict(type='TeacherSanityHook', num_batches=2, min_map=0.3,
             ratio_iters=10)
    ],
)


# Small detectors sized for 64-128 px scenes (CPU scale): a ResNet-18 of
# `base_channels` width (64 is the standard ResNet), a 64-channel FPN on
# C2-C5 (start_level=0, 4 levels P2-P5, strides 4-32) and 2-conv heads of
# `head_channels`. The benchmark's pairs differ in capacity, not in the
# shapes distillation compares (docs/efficacy.md, "The proxy"):
# - teacher: half width (base_channels 32), 64-channel heads;
# - student: an eighth of the width (base_channels 8) and 32-channel heads.
# Both FPNs give 64 channels, so every feature method compares tensors of
# one shape; the heads differ, so no head can be copied from the teacher.
# The backbones start from random weights (init_cfg=None: nothing can be
# downloaded here), so no stage is frozen and BatchNorm trains
# (frozen_stages=-1, norm_eval=False); a frozen random stem would never
# learn. `_delete_` replaces the whole backbone/neck, so the same override
# turns any mmdet config of the family into the small variant.
_FPN_CHANNELS = 64


def _small_backbone_neck(base_channels):
    return dict(
        backbone=dict(
            _delete_=True,
            type='ResNet',
            depth=18,
            base_channels=base_channels,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch',
            init_cfg=None),
        neck=dict(
            _delete_=True,
            type='FPN',
            in_channels=[base_channels * 2**i for i in range(4)],
            out_channels=_FPN_CHANNELS,
            start_level=0,
            num_outs=4))


# RetinaNet: mmdet's anchors (3 scales x 3 ratios per cell) on strides 4-32;
# the smallest span 16-25 px.
def _small_retina(base_channels, head_channels):
    return dict(
        **_small_backbone_neck(base_channels),
        bbox_head=dict(
            num_classes=10,
            in_channels=_FPN_CHANNELS,
            feat_channels=head_channels,
            stacked_convs=2,
            anchor_generator=dict(strides=[4, 8, 16, 32])))


# GFL keeps mmdet's ATSS anchors (one 8x-stride anchor per cell, reg_max 16)
# on strides 4-32 with a 2-conv head.
def _small_gfl(base_channels, head_channels):
    return dict(
        **_small_backbone_neck(base_channels),
        bbox_head=dict(
            num_classes=10,
            in_channels=_FPN_CHANNELS,
            feat_channels=head_channels,
            stacked_convs=2,
            anchor_generator=dict(strides=[4, 8, 16, 32])))


# Faster R-CNN's RPN uses anchor scale 4 (16-128 px instead of mmdet's
# 32-256) and fewer proposals (CPU scale); the RoI head keeps mmdet's 2-fc
# box head with fcs of 4 x `head_channels` (256 for the teacher instead of
# mmdet's 1024). At CPU scale RoIAlign's backward dominates a step, so the
# RoI head samples 64 RoIs per image (mmdet: 512; a scene has 2-6 digits)
# with 2 x 2 points per bin (mmdet: adaptive): the student's step takes
# 0.16 s instead of 0.33 (one thread).
def _small_faster_rcnn(base_channels, head_channels):
    return dict(
        **_small_backbone_neck(base_channels),
        rpn_head=dict(
            in_channels=_FPN_CHANNELS,
            feat_channels=head_channels,
            anchor_generator=dict(scales=[4], strides=[4, 8, 16, 32])),
        roi_head=dict(
            bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2),
                                    out_channels=_FPN_CHANNELS,
                                    featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(in_channels=_FPN_CHANNELS,
                           fc_out_channels=4 * head_channels,
                           num_classes=10)),
        train_cfg=dict(
            rpn_proposal=dict(nms_pre=1000, max_per_img=500),
            rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))


# `model = {{_base_.digit_retina.teacher}}` in a config inheriting an mmdet
# RetinaNet config (retina_r18-w32_digits.py), and `.student` in the
# student's config, which inherits the teacher's; the same for GFL and
# Faster R-CNN.
_TEACHER = dict(base_channels=32, head_channels=64)
_STUDENT = dict(base_channels=8, head_channels=32)
digit_retina = dict(teacher=_small_retina(**_TEACHER),
                    student=_small_retina(**_STUDENT))
digit_gfl = dict(teacher=_small_gfl(**_TEACHER),
                 student=_small_gfl(**_STUDENT))
digit_faster_rcnn = dict(teacher=_small_faster_rcnn(**_TEACHER),
                         student=_small_faster_rcnn(**_STUDENT))
