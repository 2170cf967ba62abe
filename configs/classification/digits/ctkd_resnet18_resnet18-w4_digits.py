# CTKD (Li et al., AAAI 2023) with KD on the digit-crops proxy: the KD
# config's teacher, student and data with CTKD's CIFAR settings (methods.md):
# CE 0.1, KD 0.9, a global temperature in (1, 21), cosine curriculum. The
# curriculum's 10 epochs of a 240-epoch schedule become 2 of this 20-epoch
# one (the same share, 0.83, rounded up as the DKD config's warm-up: with
# L = 1 lambda would be -1 from the first epoch, no curriculum).
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=0.1,
    distill=[
        dict(student='head',
             loss=dict(type='CTKDLoss',
                       loss=dict(type='KDLoss', loss_weight=0.9),
                       curriculum_epochs=2))
    ])
