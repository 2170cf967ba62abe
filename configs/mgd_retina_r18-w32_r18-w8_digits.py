# MGD (mgd_retina_x101_r50.py) on the RetinaNet family of the efficacy benchmark (tools/demo.py,
# docs/efficacy.md): teacher retina_r18-w32_digits.py (its checkpoint: the
# benchmark passes it as model.teacher_ckpt), student
# retina_r18-w8_digits.py; this file inherits the student's config
# (data and schedule) and only replaces the model.
# MGD on all 4 FPN levels, lambda 0.65 as in the paper. The COCO config
# starts the student from the teacher's head; here the heads differ in width
# (the proxy's capacity gap), so it starts from random weights like its
# baseline. alpha 6.5e-5 (COCO: 2e-5), so that the MGD loss of the first
# iterations is about twice the detection loss (4e-6, set that way on the
# earlier 128 px R50 -> R18 proxy, gave 0.12x on this pair with its
# 6000-iteration teacher over the first 10 iterations: TeacherSanityHook).
# Not compared on the holdout split for this pair.
_base_ = './retina_r18-w8_digits.py'

model = dict(
    _delete_=True,
    type='DistillationDetector',
    teacher=dict(cfg_path='mmkd_plugin::retina_r18-w32_digits.py'),
    student=dict(cfg_path='mmkd_plugin::retina_r18-w8_digits.py'),
    teacher_ckpt=None,
    distill=[
        dict(
            student='neck',
            teacher='neck',
            loss=dict(type='MGDLoss', alpha_mgd=6.5e-5, lambda_mgd=0.65)),
    ])

custom_hooks = {{_base_.digit_scenes.distill_hooks}}
