# KD (kd_faster-rcnn_r101_r18.py) on the Faster R-CNN family of the efficacy
# benchmark (tools/demo.py, docs/efficacy.md): the DKD config of the family
# with Hinton's KD (T 1, weight 1) on the C+1 logits of the student's
# sampled RoIs instead of DKD. Compared on the holdout split of the demo's
# proxy (seed 0, 6000 iterations; docs/efficacy.md, "The Faster R-CNN
# pair"): T 1 / 4 gave 58.0 / 55.7 mAP (baseline 57.0); T 1 kept.
_base_ = './dkd_faster-rcnn_r18-w32_r18-w8_digits.py'

model = dict(
    student=dict(
        roi_head=dict(
            distill_loss=dict(
                _delete_=True, type='KDLoss', temperature=1.0,
                loss_weight=1.0))))
