# DKD (dkd_faster-rcnn_r101_r18.py) on the Faster R-CNN family of the efficacy benchmark (tools/demo.py,
# docs/efficacy.md): teacher faster-rcnn_r18-w32_digits.py (its checkpoint: the
# benchmark passes it as model.teacher_ckpt), student
# faster-rcnn_r18-w8_digits.py; this file inherits the student's config
# (data and schedule) and only replaces the model.
# DistillRoIHead: DKD on the C+1 logits of the student's sampled RoIs,
# alpha 1, beta 0.25, T 1, as in the COCO config. Compared on the holdout
# split of the demo's proxy (seed 0, 6000 iterations; docs/efficacy.md,
# "The Faster R-CNN pair"): T 1 / 4 gave 57.1 / 56.2 mAP (baseline 57.0);
# T 1 kept.
_base_ = './faster-rcnn_r18-w8_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::faster-rcnn_r18-w32_digits.py'),
    student=dict(
        cfg_path='mmkd_plugin::faster-rcnn_r18-w8_digits.py',
        roi_head=dict(
            type='DistillRoIHead',
            distill_loss=dict(
                type='DKDLoss', alpha=1.0, beta=0.25, temperature=1.0))),
    teacher_ckpt=None,
    distill=[])

custom_hooks = {{_base_.digit_scenes.distill_hooks_paper_weights}}
