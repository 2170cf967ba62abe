# KD (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015)
# on the RoI classifier: Faster R-CNN R101 teacher -> Faster R-CNN R18,
# COCO 1x; the KD baseline of DKD (Zhao et al., CVPR 2022). The teacher's RoI
# head runs on the student's sampled RoIs over the teacher's features; softmax
# KL on the 81-way logits, T 1, weight 1 (T as in the DKD detection setting).
# Teacher: mmdet faster-rcnn_r101_fpn_ms-3x_coco (41.8).
# Published (DKD paper, R101 42.04 -> R18): baseline 33.26; DKD 35.05.
_base_ = './dkd_faster-rcnn_r101_r18.py'

model = dict(
    student=dict(
        roi_head=dict(
            distill_loss=dict(
                _delete_=True, type='KDLoss', temperature=1.0,
                loss_weight=1.0))))
