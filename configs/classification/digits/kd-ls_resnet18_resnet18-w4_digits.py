# KD with logit standardisation (Sun et al., CVPR 2024) on the digit-crops
# proxy: the KD config's teacher, student and data with the paper's CIFAR
# defaults (methods.md): base temperature 2, KD weight 9, CE 0.1.
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=0.1,
    distill=[
        dict(student='head',
             loss=dict(type='KDLoss', temperature=2.0, loss_weight=9.0,
                       logit_standardization=True))
    ])
