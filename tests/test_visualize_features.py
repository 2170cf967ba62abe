# Copyright (c) mmkd_plugin contributors.
"""tools/visualize_features.py on a random FGD digits model: the PNG, the
per-level maps against a direct computation, FGD's fg mask for one scaled
ground-truth box, both checkpoint kinds and the refusals. The tool runs
in-process through ``main(argv)``, once through its real command line."""
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

from .conftest import CONFIG_DIR, REPO_ROOT, load_offline_config

TOOL = osp.join(REPO_ROOT, 'tools', 'visualize_features.py')
FGD_CONFIG = 'fgd_retina_r18-w32_r18-w8_digits.py'
CONFIG_PATH = osp.join(CONFIG_DIR, FGD_CONFIG)
IMAGE_HW = (64, 96)  # resized to 85 x 128 (see `assets`), pad 96
BOX_XYWH = [12, 10, 28, 20]  # the first bright rectangle, the only gt box
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _load_tool():
    spec = importlib.util.spec_from_file_location('visualize_features', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vf = _load_tool()


def _write_coco(path, file_name, boxes):
    images = [dict(id=7, file_name=file_name, height=IMAGE_HW[0],
                   width=IMAGE_HW[1])]
    anns = [dict(id=i + 1, image_id=7, category_id=1, bbox=box, iscrowd=0,
                 area=box[2] * box[3]) for i, box in enumerate(boxes)]
    with open(path, 'w') as file:
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=1, name='0')]), file)
    return str(path)


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    """A random FGD digits model, its checkpoints, an image, ann files."""
    root = tmp_path_factory.mktemp('visualize')
    cfg = load_offline_config(FGD_CONFIG)
    # The digits configs keep images at their size; resize as the COCO
    # configs do, so that boxes must follow a scale factor.
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform.type == 'Resize':
            transform.pop('scale_factor')
            transform.update(scale=(128, 128), keep_ratio=True)
    model = MODELS.build(cfg.model).eval()
    teacher = str(root / 'teacher.pth')
    torch.save({'state_dict': model.teacher.state_dict()}, teacher)
    (root / 'run').mkdir()
    distilled = str(root / 'run' / 'iter_1.pth')
    torch.save({'state_dict': model.state_dict()}, distilled)
    exported = str(root / 'student.pth')
    torch.save({'state_dict': model.student.state_dict()}, exported)
    unrelated = str(root / 'unrelated.pth')
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, unrelated)

    image = np.full((*IMAGE_HW, 3), 30, np.uint8)
    x, y, w, h = BOX_XYWH
    image[y:y + h, x:x + w] = 240
    image[36:58, 60:88] = (40, 220, 250)
    image_path = str(root / 'scene.png')
    cv2.imwrite(image_path, image)
    ann = _write_coco(root / 'ann.json', 'scene.png', [BOX_XYWH])
    other_ann = _write_coco(root / 'other.json', 'elsewhere.png', [BOX_XYWH])
    return SimpleNamespace(root=root, cfg=cfg, model=model, teacher=teacher,
                           distilled=distilled, exported=exported,
                           unrelated=unrelated, image=image_path, ann=ann,
                           other_ann=other_ann)


@pytest.fixture(scope='module')
def prepared(assets):
    """Preprocessed image, its gt boxes and the maps of all levels."""
    inputs, sample = vf.preprocess(assets.model, assets.cfg, assets.image)
    boxes = vf.gt_boxes(assets.ann, assets.image,
                        sample.metainfo['scale_factor'])
    maps = vf.feature_maps(assets.model, inputs, sample, boxes, 0.5)
    return SimpleNamespace(inputs=inputs, sample=sample, boxes=boxes,
                           maps=maps)


def _check_png(path):
    with open(path, 'rb') as file:
        assert file.read(8) == PNG_MAGIC
    image = cv2.imread(path)
    assert image is not None
    height, width = image.shape[:2]
    assert 300 <= width <= 3000 and 200 <= height <= 4000, image.shape
    return image


def test_main_writes_png_with_gt_boxes(assets, capsys):
    out = vf.main([CONFIG_PATH, assets.distilled, assets.image,
                   '--teacher-ckpt', assets.teacher, '--ann-file',
                   assets.ann])
    assert out == osp.join(osp.dirname(assets.distilled),
                           'features_scene.png')
    _check_png(out)
    log = capsys.readouterr().out
    assert 'as a distillation checkpoint' in log
    assert 'boxes: 1 from ground truth (ann.json)' in log
    for level in range(4):
        assert f'level {level} (stride {4 * 2 ** level})' in log
    assert 'attention cosine' in log and f'wrote {out}' in log


def test_feature_maps_match_direct_computation(assets, prepared):
    model, inputs, maps = assets.model, prepared.inputs, prepared.maps
    with torch.no_grad():
        student = model.student.extract_feat(inputs)
        teacher = model.teacher.extract_feat(model.teacher_inputs(inputs))
    assert len(maps) == len(student) == 4
    batch_h = prepared.sample.metainfo['batch_input_shape'][0]
    for level, s_feat, t_feat in zip(maps, student, teacher):
        height, width = s_feat.shape[-2:]
        assert level['stride'] == batch_h // height
        for key in ('teacher', 'student', 'fg'):
            assert level[key].shape == (height, width)
        for key in ('teacher', 'student'):
            # float32 maps: the sum's rounding error grows with H*W
            total = level[key].astype(np.float64).sum()
            assert abs(total - height * width) < 1e-6 * height * width
        for key, feat in (('student', s_feat), ('teacher', t_feat)):
            value = feat[0].double().abs().mean(dim=0).flatten() / 0.5
            direct = (height * width * torch.softmax(value, dim=0)).view(
                height, width).numpy()
            np.testing.assert_allclose(level[key], direct, rtol=1e-4,
                                       atol=1e-5)
        t_att, s_att = level['teacher'].ravel(), level['student'].ravel()
        cosine = t_att @ s_att / np.linalg.norm(t_att) / np.linalg.norm(
            s_att)
        assert level['cosine'] == pytest.approx(cosine, abs=1e-5)
        assert level['l1'] == pytest.approx(np.abs(t_att - s_att).mean(),
                                            abs=1e-5)


def test_fg_mask_covers_exactly_the_scaled_box(prepared):
    w_scale, h_scale = prepared.sample.metainfo['scale_factor']
    x, y, w, h = BOX_XYWH
    expected_box = [x * w_scale, y * h_scale, (x + w) * w_scale,
                    (y + h) * h_scale]
    assert w_scale > 1.2  # the box really was scaled
    np.testing.assert_allclose(prepared.boxes.numpy(), [expected_box],
                               rtol=1e-6)
    pad_h, pad_w = prepared.sample.metainfo['batch_input_shape']
    for level in prepared.maps:
        height, width = level['fg'].shape
        x1 = math.floor(expected_box[0] * width / pad_w)
        x2 = min(math.ceil(expected_box[2] * width / pad_w), width - 1)
        y1 = math.floor(expected_box[1] * height / pad_h)
        y2 = min(math.ceil(expected_box[3] * height / pad_h), height - 1)
        inside = np.zeros((height, width), bool)
        inside[y1:y2 + 1, x1:x2 + 1] = True
        np.testing.assert_array_equal(level['fg'] != 0, inside)
        np.testing.assert_allclose(
            level['fg'][inside], 1 / ((y2 - y1 + 1) * (x2 - x1 + 1)),
            rtol=1e-6)


def test_exported_student_checkpoint_loads(assets):
    state = vf.read_state_dict(assets.exported)
    assert not any(key.startswith('student.') for key in state)
    cfg = vf.load_distill_config(CONFIG_PATH, teacher_ckpt=assets.teacher)
    model = vf.build_model(cfg, state)
    for key, value in assets.model.student.state_dict().items():
        assert torch.equal(model.student.state_dict()[key], value), key
    for key, value in assets.model.teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key


def test_gt_lookup_with_image_dir_needs_the_same_file(assets, tmp_path):
    scale = (1.0, 1.0)
    assert vf.gt_boxes(assets.other_ann, assets.image, scale) is None
    assert vf.gt_boxes(assets.ann, assets.image, scale,
                       image_dir=str(assets.root)) is not None
    # The same file name in another folder is another image.
    assert vf.gt_boxes(assets.ann, assets.image, scale,
                       image_dir=str(tmp_path)) is None
    ann_file, img_dir = vf.config_ann_file(assets.cfg)
    assert ann_file == 'data/digit_scenes/annotations/val.json'
    assert img_dir == 'data/digit_scenes/val/'
    assert vf.fgd_temp(assets.cfg) == 0.5


@pytest.mark.parametrize('case', ['plain_config', 'missing_image',
                                  'missing_ckpt', 'unrelated_ckpt',
                                  'random_teacher'])
def test_clear_errors(assets, case):
    config, ckpt, image = CONFIG_PATH, assets.distilled, assets.image
    extra = ['--teacher-ckpt', assets.teacher]
    message = {
        'plain_config': 'not a distillation config',
        'missing_image': 'image ".*nope.png" not found',
        'missing_ckpt': 'checkpoint ".*nope.pth" not found',
        'unrelated_ckpt': 'matches neither .* 0 are in it as "student',
        'random_teacher': 'the teacher has no weights',
    }[case]
    if case == 'plain_config':
        config = osp.join(CONFIG_DIR, 'retina_r18-w8_digits.py')
    elif case == 'missing_image':
        image = str(assets.root / 'nope.png')
    elif case == 'missing_ckpt':
        ckpt = str(assets.root / 'nope.pth')
    elif case == 'unrelated_ckpt':
        ckpt = assets.unrelated
    else:
        extra = []
    with pytest.raises(SystemExit, match=message):
        vf.main([config, ckpt, image, *extra])


def test_level_out_of_range(prepared):
    with pytest.raises(SystemExit, match=r'\[4\] out of range.*4 levels'):
        vf.select_levels(prepared.maps, [0, 4])
    assert [index for index, _ in vf.select_levels(prepared.maps, [3, 1])
            ] == [3, 1]


def test_command_line_falls_back_to_teacher_detections(assets, tmp_path):
    # No --ann-file, and the config's data/digit_scenes annotation file is
    # not under tmp_path: the boxes are the teacher's detections.
    out = str(tmp_path / 'features.png')
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, TOOL, CONFIG_PATH, assets.exported, assets.image,
        '--allow-random-teacher', '--levels', '0', '2', '--temp', '1.0',
        '--out', out
    ], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'from teacher detections, score >= 0.3' in log
    assert 'level 0 (stride 4)' in log and 'level 2 (stride 16)' in log
    assert 'level 1 ' not in log
    assert 'as a student checkpoint' in log
    _check_png(out)


def test_teacher_and_student_attention_share_one_colour_scale(
        assets, tmp_path):
    # Two flat maps, the student's three times the teacher's: on one colour
    # scale the teacher is at the bottom and the student at the top of it;
    # each on its own scale, both would get the same colour.
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=IMAGE_HW,
                                         batch_input_shape=IMAGE_HW))
    flat = np.ones((4, 6), np.float32)
    level = dict(teacher=flat, student=3 * flat, fg=0 * flat, stride=16,
                 cosine=1.0, l1=2.0)
    out = str(tmp_path / 'scale.png')
    vf.draw_figure(assets.image, [(2, level)], torch.zeros(0, 4), sample,
                   'flat maps', out)
    image = _check_png(out)  # BGR
    y = 2 * vf.CAPTION_HEIGHT + 100  # title strip, row caption, panel
    teacher, student = image[y, 160].astype(int), image[y, 480].astype(int)
    assert teacher[0] > teacher[2] + 60  # blue: the low end of jet
    assert student[2] > student[0] + 60  # red: the high end
