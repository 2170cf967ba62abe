# ImageNet-1k, teacher ResNet-34 (mmpretrain model zoo, 73.62 top-1) ->
# student ResNet-18 trained from scratch. Data, schedule (100 epochs, SGD
# lr 0.1 x0.1 at 30/60/90, batch 8 x 32) and runtime are the student's own
# mmpretrain config; the method configs add their `distill` terms.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['mmkd_plugin'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='DistillationClassifier',
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    probe_input_size=(224, 224),
    distill=[])
