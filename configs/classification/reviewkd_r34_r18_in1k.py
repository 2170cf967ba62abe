# ReviewKD (Chen et al., CVPR 2021) on ImageNet, teacher ResNet-34 ->
# ResNet-18: attention-based fusion over the 4 stages + the pooled feature,
# hierarchical context loss, weight 1.0, mid channels 512, no warm-up.
# Published: 69.75 -> 71.61 top-1. Not run here. Both backbones output all
# four stages; the classifiers still use the last one.
_base_ = './_base_/r34_r18_in1k.py'

model = dict(
    student=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    teacher=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    distill=[
        dict(student='backbone', levels=[0, 1, 2, 3],
             loss=dict(type='ReviewKDLoss', loss_weight=1.0))
    ])
