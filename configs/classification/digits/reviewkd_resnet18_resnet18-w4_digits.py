# ReviewKD (Chen et al., CVPR 2021) on the digit-crops proxy: the KD config's
# teacher, student and data; the four stages of both CIFAR ResNets (32, 16,
# 8, 4 px) plus the pooled feature, fused by ABF and compared with HCL
# (methods.md), weight 5 as mdistiller's CIFAR setting, CE 1; the 20-epoch
# warm-up of 240 epochs becomes 2 of 20, as in the DKD config. Both
# backbones return every stage; the classifier heads still read the last.
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    teacher=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    student_loss_weight=1.0,
    distill=[
        dict(student='backbone', levels=[0, 1, 2, 3],
             loss=dict(type='ReviewKDLoss', loss_weight=5.0,
                       warmup_epochs=2))
    ])
