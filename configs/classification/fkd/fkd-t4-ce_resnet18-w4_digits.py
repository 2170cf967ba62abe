# FKD at temperature 4 (fkd-t4_resnet18-w4_digits.py, same store of all 10
# probabilities) plus the true-label cross-entropy: the whole loss of online
# KD (kd_resnet18_resnet18-w4_digits.py: 0.1 CE + 0.9 KD at T 4) from stored
# labels. An extension; the FKD paper trains on the soft labels alone.
# SoftAndHardLabelClsHead reads the replayed label (gt_score) and the
# dataset's class (gt_label) of each crop. Measured at 40 epochs (3 seeds,
# docs/efficacy.md): no better than fkd-t4 (-0.28 ± 0.77), which is level
# with online KD.
#   python tools/train.py configs/classification/fkd/fkd-t4-ce_resnet18-w4_digits.py
_base_ = './fkd-t4_resnet18-w4_digits.py'

model = dict(
    head=dict(
        type='SoftAndHardLabelClsHead',
        loss=dict(loss_weight=0.9),
        hard_label_loss=dict(type='CrossEntropyLoss', loss_weight=0.1)))
