# KD (kd_faster-rcnn_r101_r18.py) on the Faster R-CNN family of the efficacy
# benchmark (tools/demo.py, docs/efficacy.md): the DKD config of the family
# with Hinton's KD (T 1, weight 1) on the C+1 logits of the student's
# sampled RoIs instead of DKD.
_base_ = './dkd_faster-rcnn_r18-w32_r18-w8_digits.py'

model = dict(
    student=dict(
        roi_head=dict(
            distill_loss=dict(
                _delete_=True, type='KDLoss', temperature=1.0,
                loss_weight=1.0))))
