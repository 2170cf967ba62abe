# KD (Hinton et al., 2015) on the digit-crops proxy: teacher
# resnet18_digits.py (its checkpoint: pass model.teacher_ckpt=...), student
# resnet18-w4_digits.py; this file inherits the student's config (data and
# schedule) and only replaces the model. KD's CIFAR setting as in SDD's
# configs (methods.md): T 4, 0.1 CE + 0.9 KD.
# Run (from the repository root, after training the teacher):
#   python tools/train.py \
#       configs/classification/digits/kd_resnet18_resnet18-w4_digits.py \
#       --cfg-options model.teacher_ckpt=work_dirs/resnet18_digits/epoch_20.pth
_base_ = './resnet18-w4_digits.py'

model = dict(
    _delete_=True,
    type='DistillationClassifier',
    teacher=dict(cfg_path='mmkd_plugin::classification/digits/'
                 'resnet18_digits.py'),
    student=dict(cfg_path='mmkd_plugin::classification/digits/'
                 'resnet18-w4_digits.py'),
    teacher_ckpt=None,
    probe_input_size=(32, 32),
    student_loss_weight=0.1,
    distill=[
        dict(student='head',
             loss=dict(type='KDLoss', temperature=4.0, loss_weight=0.9))
    ])
