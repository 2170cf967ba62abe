# WSLD (Zhou et al., ICLR 2021) on the digit-crops proxy: the KD config's
# teacher, student and data with WSLD as mmrazor configures it (methods.md:
# tau 2, loss weight 2.5, CE kept at 1). methods.md has no CIFAR setting
# for WSLD, so the ImageNet one is used unchanged; it was not tuned here.
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=1.0,
    distill=[
        dict(student='head',
             loss=dict(type='WSLDLoss', temperature=2.0, loss_weight=2.5))
    ])
