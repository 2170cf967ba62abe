# DKD (Zhao et al., CVPR 2022) on the digit-crops proxy: the KD config's
# teacher, student and data with DKD's CIFAR settings (methods.md): alpha 1,
# beta 8, T 4, CE 1; the 20-epoch warm-up of a 240-epoch schedule becomes 2
# epochs of this 20-epoch one (same share, 1.67, rounded up; the factor is
# min(epoch / 2, 1) with epochs counted from 1, so 0.5 in epoch 1 — a
# 1-epoch warm-up would be no warm-up at all).
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=1.0,
    distill=[
        dict(student='head',
             loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, temperature=4.0,
                       warmup_epochs=2))
    ])
