# SD-DKD (Wei et al., CVPR 2024) on the digit-crops proxy: the KD config's
# teacher, student and data with SDD's CIFAR settings for a same-family pair
# (methods.md): scales [1, 2] on the last 4x4 feature map (5 regions through
# the model's own fc), DKD alpha 1, beta 8, T 4, CE 1; the 20-epoch warm-up
# of 240 epochs becomes 2 of 20, as in the DKD config.
_base_ = './kd_resnet18_resnet18-w4_digits.py'

model = dict(
    student_loss_weight=1.0,
    distill=[
        dict(student='backbone',
             loss=dict(type='SDDLoss', scales=(1, 2), loss='dkd', alpha=1.0,
                       beta=8.0, temperature=4.0, warmup_epochs=2))
    ])
