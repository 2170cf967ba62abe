# Copyright (c) mmkd_plugin contributors.
"""FKD: label store, soft-label generation (deterministic, resumable,
sharded), crop replay and label rebuild, refusals."""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

pytest.importorskip('mmpretrain')
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS  # noqa: E402

from mmkd_plugin.fkd import (FKDCrops, FKDLabelStore, FKDStoreMeta,  # noqa
                             rebuild_soft_label)
from mmkd_plugin.fkd.crops import (crop_rng, normalise_boxes,  # noqa: E402
                                   pixel_box, sample_crop_box)
from mmkd_plugin.fkd.generator import (SoftLabelGenerator,  # noqa: E402
                                       teacher_model_config)

NUM_CLASSES = 3
NUM_IMAGES = 8
IMG_H, IMG_W = 40, 28  # not square: a swapped height / width shows
CROP = 24
NUM_CROPS = 6


def tiny_classifier(num_classes=NUM_CLASSES, soft=False):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, base_channels=4,
                      stem_channels=4),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=32,
                  loss=dict(type='CrossEntropyLoss', use_soft=soft)),
        data_preprocessor=dict(num_classes=num_classes,
                               mean=[120., 110., 100.], std=[60., 50., 40.],
                               to_rgb=True))


def train_pipeline(crop_ratio_range=(0.08, 1.0)):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=CROP,
             crop_ratio_range=crop_ratio_range),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """8 random 40x28 images in 3 class folders, with a CustomDataset
    annotation file."""
    root = tmp_path_factory.mktemp('fkd_data')
    rng = np.random.default_rng(0)
    lines = []
    for index in range(NUM_IMAGES):
        label = index % NUM_CLASSES
        rel = f'cls{label}/img{index}.png'
        img = rng.integers(0, 256, (IMG_H, IMG_W, 3), dtype=np.uint8)
        mmcv.imwrite(img, str(root / 'images' / rel))
        lines.append(f'{rel} {label}')
    (root / 'train.txt').write_text('\n'.join(lines) + '\n')
    return root


def make_config(data_root, **pipeline_kwargs) -> Config:
    cfg = Config(
        dict(model=tiny_classifier(),
             train_dataloader=dict(dataset=dict(
                 type='CustomDataset', data_root=str(data_root),
                 ann_file='train.txt', data_prefix='images',
                 pipeline=train_pipeline(**pipeline_kwargs)))))
    return cfg


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """A random tiny teacher with logits far from uniform."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(tiny_classifier())
    model.init_weights()
    with torch.no_grad():
        model.head.fc.weight.normal_(std=3.0)
    path = str(tmp_path_factory.mktemp('fkd_ckpt') / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def generate(data_root, teacher_ckpt, out, seed=0, rank=0, world_size=1,
             **kwargs):
    generator = SoftLabelGenerator(make_config(data_root), teacher_ckpt,
                                   str(out), num_crops=NUM_CROPS, topk=2,
                                   seed=seed, crops_per_batch=4, **kwargs)
    counts = generator.run(rank, world_size, progress=False)
    return generator, counts


def store_files(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as file:
                files[osp.relpath(path, root)] = file.read()
    return files


@pytest.fixture(scope='module')
def store(data_root, teacher_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp('fkd_store')
    generate(data_root, teacher_ckpt, out)
    return str(out)


def make_meta(**kwargs):
    values = dict(num_classes=NUM_CLASSES, num_crops=4, topk=2,
                  prob_dtype='float32',
                  crop=dict(scale=[CROP, CROP], crop_ratio_range=[0.08, 1.0],
                            aspect_ratio_range=[0.75, 4 / 3],
                            max_attempts=10, interpolation='bilinear',
                            backend='cv2', flip_prob=0.5),
                  seed=0, img_prefix='/data/images')
    values.update(kwargs)
    return FKDStoreMeta(**values)


# Label store


@pytest.mark.parametrize('prob_dtype', ['float32', 'float16'])
def test_store_round_trip(tmp_path, prob_dtype):
    meta = make_meta(prob_dtype=prob_dtype, num_classes=70000)
    store = FKDLabelStore.create(str(tmp_path), meta)
    rng = np.random.default_rng(1)
    crops = FKDCrops(boxes=rng.random((4, 4)).astype(np.float32),
                     flips=np.array([True, False, False, True]),
                     indices=np.array([[69999, 3], [0, 1], [5, 65536],
                                       [2, 7]]),
                     probs=rng.random((4, 2)).astype(np.float32))
    key = store.key_of('/data/images/cls0/a.png')
    assert key == osp.join('cls0', 'a.png')
    assert not store.has(key)
    store.write(key, crops)
    assert store.has(key)
    assert osp.getsize(store.label_path(key)) == 4 * (17 + 2 * (4 + (
        2 if prob_dtype == 'float16' else 4)))
    back = FKDLabelStore.open(str(tmp_path)).read(key)
    np.testing.assert_array_equal(back.boxes, crops.boxes)
    np.testing.assert_array_equal(back.flips, crops.flips)
    np.testing.assert_array_equal(back.indices, crops.indices)
    tol = 1e-3 if prob_dtype == 'float16' else 0
    np.testing.assert_allclose(back.probs, crops.probs, rtol=tol, atol=0)
    assert FKDLabelStore.open(str(tmp_path)).meta == \
        FKDStoreMeta.from_json(meta.to_json())
    # Reading some crops (what training does) gives those rows, in order.
    some = FKDLabelStore.open(str(tmp_path)).read(key, [3, 0, 3])
    for name in ('boxes', 'flips', 'indices', 'probs'):
        np.testing.assert_array_equal(getattr(some, name),
                                      getattr(back, name)[[3, 0, 3]])
    with pytest.raises(IndexError, match='crop 4 out of range'):
        store.read(key, [1, 4])


@pytest.mark.parametrize('prefix', ['/data/images', '/data/images/',
                                    'data/images', '/'])
@pytest.mark.parametrize('relative', [
    'cls0/a.png', 'a.png', 'cls0/./a.png', 'cls0//a.png', 'x/../cls0/a.png',
    'cls0/sub/../a.png', './cls0/a.png'
])
def test_store_keys_are_relpaths(prefix, relative):
    """The key is the image's path relative to the prefix, however the
    path is spelt (the fast path of the usual spelling must agree)."""
    store = FKDLabelStore(
        '/store', make_meta(img_prefix=prefix.rstrip('/') or '/'))
    img_path = prefix.rstrip('/') + '/' + relative
    assert store.key_of(img_path) == osp.relpath(img_path, prefix)
    assert store.key_of(img_path.replace(prefix.rstrip('/'), '/moved', 1),
                        img_prefix='/moved') == osp.relpath(
                            img_path, prefix)


def test_store_file_sizes_and_refusals(tmp_path):
    meta = make_meta()
    assert meta.bytes_per_image == 4 * (16 + 1 + 2 * (2 + 4))
    assert make_meta(prob_dtype='float16', num_crops=500, topk=5,
                     num_classes=1000).bytes_per_image == 500 * (17 + 4 * 5)
    store = FKDLabelStore.create(str(tmp_path), meta)
    with pytest.raises(ValueError, match='shape'):
        store.write('a', FKDCrops(np.zeros((3, 4)), np.zeros(3, bool),
                                  np.zeros((3, 2)), np.zeros((3, 2))))
    with pytest.raises(FileNotFoundError, match='no labels for image "a"'):
        store.read('a')
    with open(store.label_path('a'), 'wb') as file:  # truncated
        file.write(b'\0' * 10)
    assert not store.has('a')
    with pytest.raises(ValueError, match='10 bytes, expected'):
        store.read('a')
    with pytest.raises(ValueError, match='10 bytes, expected'):
        store.read('a', [0])
    with pytest.raises(ValueError, match='not under the image prefix'):
        store.key_of('/elsewhere/a.png')
    with pytest.raises(ValueError, match='other settings'):
        FKDLabelStore.create(str(tmp_path), make_meta(topk=3))
    with pytest.raises(FileNotFoundError, match='make_soft_labels'):
        FKDLabelStore.open(str(tmp_path / 'none'))
    with pytest.raises(ValueError, match='topk'):
        make_meta(topk=4)


# Crops


def test_crop_boxes_follow_the_ratio_ranges_and_replay_exactly():
    rng = crop_rng(3, 5)
    boxes = np.array([
        sample_crop_box(rng, 397, 211, (0.3, 0.6), (0.5, 2.0))
        for _ in range(200)
    ])
    top, left, height, width = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= 397).all() and (left + width <= 211).all()
    area = height * width / (397 * 211)
    assert area.min() > 0.28 and area.max() < 0.62  # rounding of w, h
    assert area.max() - area.min() > 0.2  # spread over the range
    ratio = width / height
    assert ratio.min() > 0.45 and ratio.max() < 2.1
    normalised = normalise_boxes(boxes, 397, 211)
    assert normalised.dtype == np.float32
    replayed = np.array([pixel_box(box, 397, 211) for box in normalised])
    np.testing.assert_array_equal(replayed, boxes)
    again = np.array([
        sample_crop_box(crop_rng(3, 5), 397, 211, (0.3, 0.6), (0.5, 2.0))
    ])
    np.testing.assert_array_equal(again[0], boxes[0])


# Soft labels


def reference_label(indices, probs, num_classes, label_type):
    """Loop reference, float64."""
    k = len(indices)
    if label_type == 'hard':
        target = [0.0] * num_classes
        target[int(indices[0])] = 1.0
        return target
    if label_type == 'smoothing':
        indices, probs, k = indices[:1], probs[:1], 1
    rest = 0.0
    if label_type != 'marginal_renorm':
        rest = (1.0 - sum(float(p) for p in probs)) / (num_classes - k)
    target = [rest] * num_classes
    for index, prob in zip(indices, probs):
        target[int(index)] = float(prob)
    total = sum(target)
    return [value / total for value in target]


@pytest.mark.parametrize(
    'label_type', ['marginal_smoothing', 'marginal_renorm', 'smoothing',
                   'hard'])
def test_rebuilt_labels_match_reference(label_type):
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    probs, indices = (logits * 2).softmax(-1).topk(3, dim=-1)
    target = rebuild_soft_label(indices.numpy(), probs.numpy(), 10,
                                label_type)
    assert target.shape == (5, 10) and target.dtype == torch.float32
    torch.testing.assert_close(target.sum(-1), torch.ones(5))
    reference = torch.tensor([
        reference_label(i, p, 10, label_type)
        for i, p in zip(indices.double(), probs.double())
    ], dtype=torch.float64)
    torch.testing.assert_close(target.double(), reference, rtol=1e-6,
                               atol=1e-7)
    for row in range(5):  # one crop at a time, as the training pipeline
        one = rebuild_soft_label(indices[row].numpy(), probs[row].numpy(),
                                 10, label_type)
        assert one.shape == (10, ) and one.dtype == torch.float32
        torch.testing.assert_close(one.double(), reference[row], rtol=1e-6,
                                   atol=1e-7)
    if label_type == 'marginal_smoothing':  # the top-k kept as stored
        torch.testing.assert_close(target.gather(1, indices), probs)
        assert (target > 0).all()


def test_rebuilt_label_float16_overshoot_is_clamped():
    probs = np.array([0.7, 0.3004], dtype=np.float16)  # sums above 1
    target = rebuild_soft_label(np.array([2, 0]), probs, 4)
    assert float(target.sum()) == pytest.approx(1.0)
    assert (target[[1, 3]] == 0).all() and (target >= 0).all()
    with pytest.raises(ValueError, match='label_type'):
        rebuild_soft_label(np.array([0]), np.array([1.0]), 4, 'other')


# Generation


def test_generation_is_deterministic_and_seeded(data_root, teacher_ckpt,
                                                store, tmp_path):
    files = store_files(store)
    label_files = [name for name in files if name.endswith('.fkd')]
    assert len(label_files) == NUM_IMAGES
    assert osp.join('cls1', 'img4.png.fkd') in label_files
    generate(data_root, teacher_ckpt, tmp_path / 'again')
    assert store_files(tmp_path / 'again') == files
    generate(data_root, teacher_ckpt, tmp_path / 'seed1', seed=1)
    other = FKDLabelStore.open(str(tmp_path / 'seed1'))
    first = FKDLabelStore.open(store)
    for name in label_files:
        key = name[:-len('.fkd')]
        assert not np.array_equal(other.read(key).boxes,
                                  first.read(key).boxes)


def test_sharded_generation_equals_one_process(data_root, teacher_ckpt,
                                               store, tmp_path):
    for rank in range(3):
        _, counts = generate(data_root, teacher_ckpt, tmp_path, rank=rank,
                             world_size=3)
        assert counts == dict(written=len(range(rank, NUM_IMAGES, 3)),
                              skipped=0)
    assert store_files(tmp_path) == store_files(store)


def test_generation_resumes_skipping_stored_images(data_root, teacher_ckpt,
                                                   store, tmp_path):
    generate(data_root, teacher_ckpt, tmp_path)
    done = FKDLabelStore.open(str(tmp_path))
    removed = osp.join('cls0', 'img3.png')
    os.remove(done.label_path(removed))
    marked = osp.join('cls2', 'img2.png')
    size = done.meta.bytes_per_image
    with open(done.label_path(marked), 'wb') as file:  # same size: kept
        file.write(b'\1' * size)
    truncated = osp.join('cls1', 'img1.png')
    with open(done.label_path(truncated), 'wb') as file:  # redone
        file.write(b'\1' * (size - 1))
    _, counts = generate(data_root, teacher_ckpt, tmp_path)
    assert counts == dict(written=2, skipped=NUM_IMAGES - 2)
    files, reference = store_files(tmp_path), store_files(store)
    assert files[marked + '.fkd'] == b'\1' * size
    for key in (removed, truncated):
        assert files[key + '.fkd'] == reference[key + '.fkd']
    with pytest.raises(ValueError, match='other settings'):
        generate(data_root, teacher_ckpt, tmp_path, seed=1)


def test_store_metadata(store, teacher_ckpt, data_root):
    meta = FKDLabelStore.open(store).meta
    assert (meta.num_classes, meta.num_crops, meta.topk) == (3, NUM_CROPS, 2)
    assert meta.crop == dict(scale=[CROP, CROP], crop_ratio_range=[0.08, 1.0],
                             aspect_ratio_range=[0.75, 4 / 3],
                             max_attempts=10, interpolation='bilinear',
                             backend='cv2', flip_prob=0.5)
    assert meta.img_prefix == str(data_root / 'images')
    assert meta.teacher['model'] == 'ImageClassifier'
    assert meta.teacher['checkpoint'] == osp.abspath(teacher_ckpt)
    assert len(meta.teacher['checkpoint_sha256']) == 64
    assert meta.prob_dtype == 'float32'


# Replay


def replay_transform(label_root, **kwargs):
    cfg = dict(type='FKDReplayCrop', label_root=label_root,
               num_classes=NUM_CLASSES, scale=CROP)
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(cfg)


def replay_dataset(data_root, label_root, **kwargs):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='FKDReplayCrop', label_root=label_root,
             num_classes=NUM_CLASSES, scale=CROP, **kwargs),
        dict(type='PackInputs', algorithm_keys=('fkd_crop_index', )),
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(
            dict(type='CustomDataset', data_root=str(data_root),
                 ann_file='train.txt', data_prefix='images',
                 pipeline=pipeline))


def test_replayed_crops_are_the_crops_the_teacher_saw(data_root,
                                                      teacher_ckpt,
                                                      tmp_path):
    generator = SoftLabelGenerator(make_config(data_root), teacher_ckpt,
                                   str(tmp_path), num_crops=NUM_CROPS,
                                   topk=2, crops_per_batch=4)
    batches = []  # the teacher's normalised inputs, in labelling order
    hook = generator.teacher.register_forward_pre_hook(
        lambda module, args: batches.append(args[0].clone()))
    generator.run(progress=False)
    hook.remove()
    seen = torch.cat(batches).view(NUM_IMAGES, NUM_CROPS, 3, CROP, CROP)
    flips = np.stack([
        generator.store.read(generator.store.key_of(
            generator.dataset.get_data_info(i)['img_path'])).flips
        for i in range(NUM_IMAGES)
    ])
    assert flips.any() and not flips.all()
    dataset = replay_dataset(data_root, str(tmp_path))
    teacher = generator.teacher
    replayed = set()
    np.random.seed(0)
    for _ in range(6):
        for index in range(NUM_IMAGES):
            sample = dataset[index]
            crop = sample['data_samples'].fkd_crop_index
            replayed.add((index, crop))
            inputs = teacher.data_preprocessor(
                dict(inputs=[sample['inputs']]), False)['inputs']
            torch.testing.assert_close(inputs[0], seen[index, crop],
                                       rtol=0, atol=0)
            with torch.no_grad():  # its label: the teacher's, rebuilt
                probs = teacher(inputs, mode='tensor').softmax(-1)[0]
            top_probs, top_classes = probs.topk(2)
            score = sample['data_samples'].gt_score
            torch.testing.assert_close(score[top_classes], top_probs)
            rest = (1 - top_probs.sum()) / (NUM_CLASSES - 2)
            other = [c for c in range(NUM_CLASSES) if c not in top_classes]
            torch.testing.assert_close(score[other], rest.expand(1))
    assert len(replayed) > NUM_IMAGES * 3  # several crops per image used


def test_replay_refuses_a_store_that_does_not_match(store, data_root,
                                                    tmp_path):
    with pytest.raises(ValueError, match='has 3 classes, the student.s '
                       'head 5'):
        replay_transform(store, num_classes=5)
    with pytest.raises(ValueError, match=r'crop_ratio_range \[0.35, 1.0\] '
                       r'differs from the \[0.08, 1.0\]'):
        replay_transform(store, crop_ratio_range=(0.35, 1.0))
    with pytest.raises(ValueError, match='aspect_ratio_range'):
        replay_transform(store, aspect_ratio_range=(0.5, 2.0))
    with pytest.raises(ValueError, match='flip_prob'):
        replay_transform(store, flip_prob=0.0)
    with pytest.raises(ValueError, match='label_type'):
        replay_transform(store, label_type='soft')
    with pytest.raises(FileNotFoundError, match='fkd_meta.json'):
        replay_transform(str(tmp_path))
    transform = replay_transform(store)
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    missing = str(data_root / 'images' / 'cls0' / 'new.png')
    with pytest.raises(FileNotFoundError,
                       match=r'no labels for image "cls0/new.png"'):
        transform(dict(img=img, img_path=missing))
    with pytest.raises(ValueError, match='not under the image prefix'):
        transform(dict(img=img, img_path='/elsewhere/cls0/img0.png'))
    moved = replay_transform(store, img_prefix='/elsewhere')
    assert moved(dict(img=img, img_path='/elsewhere/cls0/img0.png'))[
        'img'].shape == (CROP, CROP, 3)


def test_student_trains_on_replayed_soft_labels(store, data_root):
    """A plain ImageClassifier with soft cross-entropy learns from the
    stored labels; batch mixup mixes them."""
    dataset = replay_dataset(data_root, store)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(tiny_classifier(soft=True))
    student.init_weights()
    np.random.seed(0)
    data = student.data_preprocessor(pseudo_collate(
        [dataset[i] for i in range(4)]), True)
    targets = torch.stack([s.gt_score for s in data['data_samples']])
    losses = student.loss(data['inputs'], data['data_samples'])
    logits = student(data['inputs'], mode='tensor')
    reference = -(targets.double() * logits.double().log_softmax(1)).sum(
        1).mean()
    torch.testing.assert_close(losses['loss'].double(), reference)
    assert not torch.allclose(targets, targets.round())  # soft

    model_cfg = tiny_classifier()
    model_cfg['head']['loss'] = dict(type='SoftLabelLoss', temperature=4.0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        tempered = MODELS.build(model_cfg)
    tempered.load_state_dict(student.state_dict())
    powered = targets.double()**0.25
    softened = powered / powered.sum(1, keepdim=True)
    reference = 16 * -(softened * (logits.double() / 4).log_softmax(1)).sum(
        1).mean()
    torch.testing.assert_close(
        tempered.loss(data['inputs'], data['data_samples'])['loss'].double(),
        reference)

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(
            dict(tiny_classifier(soft=True),
                 train_cfg=dict(augments=dict(type='Mixup', alpha=1.0))))
    np.random.seed(0)
    data = student.data_preprocessor(pseudo_collate(
        [dataset[i] for i in range(4)]), True)
    mixed = torch.stack([s.gt_score for s in data['data_samples']])
    torch.testing.assert_close(mixed.sum(1), torch.ones(4))
    assert not torch.allclose(mixed, targets)


def test_teacher_of_a_distillation_config(data_root, tmp_path):
    cfg = make_config(data_root)
    teacher = tiny_classifier()
    teacher['backbone']['base_channels'] = 8
    teacher['backbone']['stem_channels'] = 8
    teacher['head']['in_channels'] = 64
    cfg.model = dict(type='DistillationClassifier',
                     student=tiny_classifier(), teacher=teacher, distill=[])
    generator = SoftLabelGenerator(cfg, None, str(tmp_path), num_crops=2,
                                   topk=1)
    assert generator.teacher.backbone.stem_channels == 8
    assert generator.store.meta.teacher['model'] == 'ImageClassifier'


def test_pipeline_without_random_resized_crop_is_refused(data_root,
                                                         tmp_path):
    cfg = make_config(data_root)
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=CROP),
        dict(type='PackInputs')
    ]
    with pytest.raises(ValueError, match='exactly one RandomResizedCrop'):
        SoftLabelGenerator(cfg, None, str(tmp_path), num_crops=2, topk=1)


def test_make_soft_labels_tool_destroys_its_process_group(
        data_root, teacher_ckpt, tmp_path, monkeypatch, capsys):
    """Under torchrun the tool starts a gloo group for its final barrier;
    it destroys it when done, as train.py and test.py do (left alive,
    gloo's threads can abort the process at exit). The group calls are
    recorded here, rank 0 of 2."""
    import runpy
    calls = []
    monkeypatch.setattr('torch.distributed.init_process_group',
                        lambda backend: calls.append(('init', backend)))
    monkeypatch.setattr('torch.distributed.barrier',
                        lambda: calls.append('barrier'))
    monkeypatch.setattr('mmkd_plugin.utils.launch.destroy_process_group',
                        lambda: calls.append('destroy'))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    config = str(tmp_path / 'fkd_tiny.py')
    make_config(data_root).dump(config)
    tool = osp.join(osp.dirname(osp.dirname(__file__)), 'tools',
                    'make_soft_labels.py')
    monkeypatch.setattr('sys.argv', [
        tool, config, teacher_ckpt, str(tmp_path / 'labels'), '--crops',
        str(NUM_CROPS), '--topk', '2', '--crops-per-batch', '4'
    ])
    runpy.run_path(tool, run_name='__main__')
    assert calls == [('init', 'gloo'), 'barrier', 'destroy']
    assert f'wrote {-(-NUM_IMAGES // 2)} images' in capsys.readouterr().out


def test_make_soft_labels_tool(data_root, teacher_ckpt, store, tmp_path,
                               monkeypatch, capsys):
    import runpy
    config = str(tmp_path / 'fkd_tiny.py')
    make_config(data_root).dump(config)
    tool = osp.join(osp.dirname(osp.dirname(__file__)), 'tools',
                    'make_soft_labels.py')
    out = str(tmp_path / 'labels')
    monkeypatch.setattr('sys.argv', [
        tool, config, teacher_ckpt, out, '--crops',
        str(NUM_CROPS), '--topk', '2', '--crops-per-batch', '4'
    ])
    runpy.run_path(tool, run_name='__main__')
    printed = capsys.readouterr().out
    per_image = NUM_CROPS * (17 + 2 * (2 + 4))
    assert f'wrote {NUM_IMAGES} images, skipped 0' in printed
    assert f'{per_image} bytes per image' in printed
    written, reference = store_files(out), store_files(store)
    assert {k: v for k, v in written.items() if k.endswith('.fkd')} == {
        k: v for k, v in reference.items() if k.endswith('.fkd')}
    with pytest.raises(SystemExit, match='make_soft_labels: .*topk'):
        monkeypatch.setattr('sys.argv', [tool, config, teacher_ckpt, out,
                                         '--topk', '4'])
        runpy.run_path(tool, run_name='__main__')


def test_imagenet_config_accepts_labels_made_from_the_kd_config():
    """The FKD config's replay settings equal the crop settings that
    make_soft_labels stores for the KD config it names."""
    from mmkd_plugin.fkd.crop_settings import (crop_settings,
                                               split_train_pipeline)
    from tests.conftest import CONFIG_DIR
    kd_cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'classification', 'kd_r34_r18_in1k.py'))
    _, crop_cfg, flip_prob = split_train_pipeline(
        kd_cfg.train_dataloader.dataset.pipeline)
    stored = crop_settings(crop_cfg, flip_prob)
    teacher = teacher_model_config(kd_cfg)  # the labelling model: ResNet-34
    assert (teacher['type'], teacher['backbone']['depth']) == (
        'ImageClassifier', 34)
    assert teacher['data_preprocessor']['mean'] == [123.675, 116.28, 103.53]
    fkd_cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'classification', 'fkd', 'fkd_r34_r18_in1k.py'))
    pipeline = fkd_cfg.train_dataloader.dataset.pipeline
    assert [step.type for step in pipeline] == [
        'LoadImageFromFile', 'FKDReplayCrop', 'PackInputs']
    replay = pipeline[1]
    assert list(replay.crop_ratio_range) == stored['crop_ratio_range']
    assert list(replay.aspect_ratio_range) == stored['aspect_ratio_range']
    assert replay.flip_prob == stored['flip_prob']
    assert replay.num_classes == fkd_cfg.model.head.num_classes == 1000
    assert fkd_cfg.model.type == 'ImageClassifier'
    assert fkd_cfg.model.head.loss.use_soft


def test_digits_config_accepts_labels_made_from_the_teacher_config():
    """The digits FKD config replays what make_soft_labels stores for the
    digits teacher config (its crop settings, no flip, 10 classes) into
    the dataset root's fkd_labels/, and trains the plain student."""
    from mmkd_plugin.fkd.crop_settings import (CROP_DEFAULTS, crop_settings,
                                               split_train_pipeline)
    from tests.conftest import CONFIG_DIR
    digits = osp.join(CONFIG_DIR, 'classification', 'digits')
    teacher_cfg = Config.fromfile(osp.join(digits, 'resnet18_digits.py'))
    _, crop_cfg, flip_prob = split_train_pipeline(
        teacher_cfg.train_dataloader.dataset.pipeline)
    stored = crop_settings(crop_cfg, flip_prob)
    fkd_cfg = Config.fromfile(osp.join(CONFIG_DIR, 'classification', 'fkd',
                                       'fkd_resnet18-w4_digits.py'))
    pipeline = fkd_cfg.train_dataloader.dataset.pipeline
    assert [step.type for step in pipeline] == [
        'LoadImageFromFile', 'FKDReplayCrop', 'PackInputs']
    replay = pipeline[1]
    assert [replay.scale] * 2 == stored['scale']
    assert list(replay.crop_ratio_range) == stored['crop_ratio_range']
    assert list(replay.get('aspect_ratio_range', CROP_DEFAULTS[
        'aspect_ratio_range'])) == stored['aspect_ratio_range']
    assert replay.flip_prob == stored['flip_prob'] == 0.0
    assert replay.label_root == osp.join(
        fkd_cfg.train_dataloader.dataset.data_root, 'fkd_labels')
    student_cfg = Config.fromfile(osp.join(digits, 'resnet18-w4_digits.py'))
    assert fkd_cfg.model.backbone == student_cfg.model.backbone
    assert replay.num_classes == fkd_cfg.model.head.num_classes == 10
    assert fkd_cfg.model.head.loss.use_soft
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert fkd_cfg[key] == student_cfg[key], key


@pytest.mark.parametrize('multi_name, single_name, num_crops', [
    ('fkd-mc4', 'fkd', 4), ('fkd-t4-mc2', 'fkd-t4', 2)])
def test_digits_multi_crop_config_keeps_the_baseline_steps_and_crops(
        multi_name, single_name, num_crops):
    """k crops of each decoded image per step: the step holds the
    baseline's 64 samples and one pass counts as k epochs, so the run has
    the baseline's steps, crops and cosine span; the crops replayed and the
    model are the single-crop config's."""
    from tests.conftest import CONFIG_DIR
    fkd_dir = osp.join(CONFIG_DIR, 'classification', 'fkd')
    multi = Config.fromfile(
        osp.join(fkd_dir, f'{multi_name}_resnet18-w4_digits.py'))
    single = Config.fromfile(
        osp.join(fkd_dir, f'{single_name}_resnet18-w4_digits.py'))
    student = Config.fromfile(osp.join(CONFIG_DIR, 'classification',
                                       'digits', 'resnet18-w4_digits.py'))
    loader = multi.train_dataloader
    assert [step.type for step in loader.dataset.pipeline] == [
        'LoadImageFromFile', 'FKDMultiCrop']
    multi_crop = loader.dataset.pipeline[1]
    crops = multi_crop.num_crops
    assert crops == num_crops
    assert multi_crop.replay == single.train_dataloader.dataset.pipeline[1]
    assert loader.collate_fn.type == 'fkd_multi_crop_collate'
    assert loader.batch_size * crops == student.train_dataloader.batch_size
    assert multi.train_cfg.max_epochs * crops == student.train_cfg.max_epochs
    assert multi.param_scheduler.T_max == multi.train_cfg.max_epochs
    assert multi.default_hooks.checkpoint.interval == \
        multi.train_cfg.max_epochs
    assert multi.model == single.model


def test_digits_temperature_config_is_fkd_with_kd_temperature():
    """fkd-t4 differs from the FKD config only in its loss (the KD
    config's temperature) and its store (all classes stored, so the
    softened label is exact)."""
    from tests.conftest import CONFIG_DIR
    fkd_dir = osp.join(CONFIG_DIR, 'classification', 'fkd')
    tempered = Config.fromfile(osp.join(fkd_dir,
                                        'fkd-t4_resnet18-w4_digits.py'))
    single = Config.fromfile(osp.join(fkd_dir, 'fkd_resnet18-w4_digits.py'))
    kd = Config.fromfile(osp.join(CONFIG_DIR, 'classification', 'digits',
                                  'kd_resnet18_resnet18-w4_digits.py'))
    loss = tempered.model.head.pop('loss')
    assert loss == dict(type='SoftLabelLoss',
                        temperature=kd.model.distill[0].loss.temperature)
    single.model.head.pop('loss')
    assert tempered.model == single.model
    replay = tempered.train_dataloader.dataset.pipeline[1]
    single_replay = single.train_dataloader.dataset.pipeline[1]
    assert replay.pop('label_root') == osp.join(
        single_replay.pop('label_root') + '_k10')
    assert replay == single_replay
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert tempered[key] == single[key], key


# Several crops of one image per step


def test_multi_crop_batches_distinct_crops_of_each_image(store, data_root,
                                                         tmp_path):
    from mmengine.registry import FUNCTIONS
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='FKDMultiCrop', num_crops=4,
             replay=dict(type='FKDReplayCrop', label_root=store,
                         num_classes=NUM_CLASSES, scale=CROP),
             transforms=[
                 dict(type='PackInputs', algorithm_keys=('fkd_crop_index',
                                                         ))
             ]),
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(
            dict(type='CustomDataset', data_root=str(data_root),
                 ann_file='train.txt', data_prefix='images',
                 pipeline=pipeline))
        collate = FUNCTIONS.get('fkd_multi_crop_collate')
    single = replay_dataset(data_root, store)
    np.random.seed(0)
    batch = collate([dataset[0], dataset[5]])
    assert len(batch['inputs']) == len(batch['data_samples']) == 8
    samples = batch['data_samples']
    for image, part in ((0, samples[:4]), (5, samples[4:])):
        chosen = [s.fkd_crop_index for s in part]
        assert len(set(chosen)) == 4  # without replacement
        assert {s.img_path for s in part} == {
            single.get_data_info(image)['img_path']}
    # each crop and label equal the single-crop replay of that crop
    transform = single.pipeline.transforms[1]
    loaded = single.pipeline.transforms[0](single.get_data_info(5))
    crops = transform.read_crops(loaded)
    for inputs, sample in zip(batch['inputs'][4:], samples[4:]):
        alone = transform.replay(dict(loaded), crops, sample.fkd_crop_index)
        torch.testing.assert_close(
            inputs, torch.from_numpy(alone['img'].transpose(2, 0, 1).copy()))
        torch.testing.assert_close(sample.gt_score, alone['gt_score'])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(tiny_classifier(soft=True))
    data = student.data_preprocessor(batch, True)
    assert data['inputs'].shape == (8, 3, CROP, CROP)
    assert torch.isfinite(student.loss(**data)['loss'])
    with pytest.raises(ValueError, match=r'num_crops must be in \[1, 6\]'):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            TRANSFORMS.build(dict(pipeline[1], num_crops=7))
