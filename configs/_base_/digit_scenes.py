# The project's generated dataset (tools/make_digit_scenes.py): 128x128
# scenes of 2-5 handwritten digits, 10 classes, COCO format, with a
# CPU-sized iteration schedule.
#
# mmengine forbids the same key in two sibling bases, so everything sits
# under `digit_scenes`; a config that inherits a COCO config and this file
# takes each part with `key = {{_base_.digit_scenes.key}}` (see
# cwd_retina_r101_r18_digits.py). `_delete_` drops the COCO settings.
_data_root = 'data/digit_scenes/'
_metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
_image_size = (128, 128)
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
    dict(type='Resize', scale=_image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=_image_size, keep_ratio=True),
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
)
