# DIST (Huang et al., NeurIPS 2022) on the digit-crops proxy: the KD config's
# teacher, student and data with DIST's CIFAR settings (methods.md):
# tau 4, beta = gamma = 1, CE 1 + 2 * L_DIST.
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=1.0,
    distill=[
        dict(student='head',
             loss=dict(type='DISTLoss', temperature=4.0, inter_weight=1.0,
                       intra_weight=1.0, loss_weight=2.0))
    ])
