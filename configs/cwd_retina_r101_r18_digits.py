# cwd_retina_r101_r18.py at small scale on the generated digit scenes
# (tools/make_digit_scenes.py): 10 classes, 128x128 images, CPU schedule.
# Train the teacher first (its own config) and pass its checkpoint:
#   --cfg-options model.teacher_ckpt=work_dirs/<teacher>/iter_1000.pth
_base_ = ['./cwd_retina_r101_r18.py', './_base_/digit_scenes.py']

model = dict(
    student=dict(bbox_head=dict(num_classes=10)),
    teacher=dict(bbox_head=dict(num_classes=10)),
    teacher_ckpt=None)
