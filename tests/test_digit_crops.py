# Copyright (c) mmkd_plugin contributors.
"""The digit-crops classification dataset: layout, determinism, balance,
glyph pools, the up-to-date skip, option checks and the command line."""
import hashlib
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from mmkd_plugin.utils.digit_scenes import (CropDifficulty,
                                            generate_digit_crops)
from mmkd_plugin.utils.digit_scenes.coco_writer import split_source_pools
from mmkd_plugin.utils.digit_scenes.crops_writer import compose_crop
from mmkd_plugin.utils.digit_scenes.drawing import load_digit_glyphs

from .conftest import REPO_ROOT

SIZES = dict(num_train=20, num_val=10, num_holdout=10)


def read_annotations(path):
    with open(path, encoding='utf-8') as file:
        return [line.split() for line in file.read().splitlines()]


def digest_of_tree(root):
    """sha256 over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as file:
                digest.update(file.read())
    return digest.hexdigest()


@pytest.fixture(scope='module')
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp('crops') / 'digit_crops'
    return generate_digit_crops(str(root), seed=3, **SIZES)


def test_layout_split_sizes_and_mmpretrain_format(crops):
    for split in ('train', 'val', 'holdout'):
        rows = read_annotations(crops[f'{split}_ann'])
        assert len(rows) == SIZES[f'num_{split}']
        for index, (rel_path, label) in enumerate(rows):
            assert rel_path == f'{split}/{index:06d}.png'
            image = Image.open(os.path.join(crops['root'], rel_path))
            assert image.size == (32, 32) and image.mode == 'RGB'
            assert 0 <= int(label) <= 9
        assert sorted(os.listdir(crops[f'{split}_img_dir'])) == \
            [f'{index:06d}.png' for index in range(len(rows))]
    with open(crops['classes'], encoding='utf-8') as file:
        assert file.read().split() == [str(digit) for digit in range(10)]


def test_mmpretrain_custom_dataset_reads_it(crops):
    pytest.importorskip('mmpretrain')
    from mmpretrain.datasets import CustomDataset
    dataset = CustomDataset(data_root=crops['root'],
                            ann_file='annotations/val.txt', data_prefix='',
                            classes=crops['classes'])
    assert len(dataset) == SIZES['num_val']
    info = dataset.get_data_info(3)
    assert info['img_path'] == os.path.join(crops['root'], 'val',
                                            '000003.png')
    assert info['gt_label'] == 3
    assert dataset.CLASSES == tuple(str(digit) for digit in range(10))


def test_labels_are_balanced(tmp_path):
    paths = generate_digit_crops(str(tmp_path), num_train=47, num_val=1,
                                 num_holdout=0)
    labels = [int(label) for _, label in read_annotations(
        paths['train_ann'])]
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 4 and counts.max() <= 5, counts


def test_same_seed_same_bytes_other_seed_other_pixels(tmp_path, crops):
    again = generate_digit_crops(str(tmp_path / 'again'), seed=3, **SIZES)
    assert digest_of_tree(again['root']) == digest_of_tree(crops['root'])
    other = generate_digit_crops(str(tmp_path / 'other'), seed=4, **SIZES)
    first = np.asarray(Image.open(os.path.join(crops['train_img_dir'],
                                               '000000.png')))
    moved = np.asarray(Image.open(os.path.join(other['train_img_dir'],
                                               '000000.png')))
    assert not np.array_equal(first, moved)


def test_image_does_not_depend_on_split_sizes(tmp_path, crops):
    small = generate_digit_crops(str(tmp_path), seed=3, num_train=5,
                                 num_val=3, num_holdout=0)
    for split, count in (('train', 5), ('val', 3)):
        for index in range(count):
            name = f'{index:06d}.png'
            with open(os.path.join(small[f'{split}_img_dir'], name),
                      'rb') as new, open(os.path.join(
                          crops[f'{split}_img_dir'], name), 'rb') as old:
                assert new.read() == old.read()
    assert 'holdout_ann' not in small


def test_target_glyph_comes_from_its_split_pool_and_class():
    glyphs, labels = load_digit_glyphs()
    pools = split_source_pools(labels)
    used = []

    class RecordingRng:
        """Forwards to a generator; records the glyph indices drawn."""

        def __init__(self):
            self.rng = np.random.default_rng(1)

        def choice(self, options):
            picked = self.rng.choice(options)
            used.append((set(np.asarray(options).tolist()), int(picked)))
            return picked

        def __getattr__(self, name):
            return getattr(self.rng, name)

    compose_crop(RecordingRng(), glyphs, labels, pools['val'], 7, 32,
                 CropDifficulty(max_distractors=2))
    assert len(used) >= 2, 'no distractor drawn: pick another seed'
    target_options, target = used[-1]
    assert target_options == set(pools['val'][labels[pools['val']] == 7])
    assert labels[target] == 7
    for options, _ in used[:-1]:  # distractors: other digits only
        assert options == set(pools['val'][labels[pools['val']] != 7])


def test_noise_std_is_the_pixel_noise():
    glyphs, labels = load_digit_glyphs()
    pool = split_source_pools(labels)['train']

    def draw(**options):
        rng = np.random.default_rng([5, 0, 1])
        return compose_crop(rng, glyphs, labels, pool, 4, 32,
                            CropDifficulty(**options)).astype(float)

    clean = draw(max_distractors=0, stroke_layers=0, noise_std=0.0)
    noisy = draw(max_distractors=0, stroke_layers=0, noise_std=0.1)
    residual = noisy - clean
    # Clipping at 0 and 255 only shrinks the noise.
    assert 0.05 * 255 < residual.std() <= 0.1 * 255 * 1.05


def test_up_to_date_output_is_not_rewritten(tmp_path):
    kwargs = dict(num_train=4, num_val=2, num_holdout=2, seed=1)
    paths = generate_digit_crops(str(tmp_path), **kwargs)
    image = os.path.join(paths['train_img_dir'], '000000.png')
    stamps = (os.path.getmtime(paths['meta']), os.path.getmtime(image))
    generate_digit_crops(str(tmp_path), **kwargs)
    assert (os.path.getmtime(paths['meta']),
            os.path.getmtime(image)) == stamps
    # A missing image or changed option regenerates.
    os.remove(image)
    generate_digit_crops(str(tmp_path), **kwargs)
    assert os.path.isfile(image)
    generate_digit_crops(str(tmp_path), **kwargs,
                         difficulty=CropDifficulty(stroke_layers=0))
    with open(paths['meta'], encoding='utf-8') as file:
        assert '"stroke_layers":0' in file.read()


def test_fewer_images_remove_stale_files(tmp_path):
    generate_digit_crops(str(tmp_path), num_train=6, num_val=2,
                         num_holdout=2)
    paths = generate_digit_crops(str(tmp_path), num_train=3, num_val=2,
                                 num_holdout=0)
    assert sorted(os.listdir(paths['train_img_dir'])) == \
        ['000000.png', '000001.png', '000002.png']
    assert not os.listdir(os.path.join(tmp_path, 'holdout'))
    assert not os.path.exists(os.path.join(tmp_path, 'annotations',
                                           'holdout.txt'))


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_train=0), 'num_train'),
    (dict(num_val=-1), 'num_val'),
    (dict(num_holdout=-1), 'num_holdout'),
    (dict(num_train=2.5), 'num_train'),
    (dict(image_size=8), 'image_size'),
    (dict(difficulty=CropDifficulty(digit_size_range=(0.9, 0.5))),
     'digit_size_range'),
    (dict(difficulty=CropDifficulty(digit_size_range=(0.5, 1.2))),
     'digit_size_range'),
    (dict(difficulty=CropDifficulty(distractor_visible_range=(0.2, 1.0))),
     'distractor_visible_range'),
    (dict(difficulty=CropDifficulty(max_distractors=-1)), 'max_distractors'),
    (dict(difficulty=CropDifficulty(stroke_layers=1.5)), 'stroke_layers'),
    (dict(difficulty=CropDifficulty(noise_std=-0.1)), 'noise_std'),
])
def test_bad_options_are_a_clear_error(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_digit_crops(str(tmp_path / 'out'), **kwargs)
    assert not os.path.exists(tmp_path / 'out')


def load_tool():
    """tools/make_digit_crops.py as a module (no subprocess: importing
    mmkd_plugin in a fresh interpreter costs seconds)."""
    path = os.path.join(REPO_ROOT, 'tools', 'make_digit_crops.py')
    spec = importlib.util.spec_from_file_location('make_digit_crops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line(tmp_path, capsys):
    tool = load_tool()
    out = tmp_path / 'crops'
    argv = [
        '--out', str(out), '--num-train', '3', '--num-val', '2',
        '--num-holdout', '1', '--seed', '2', '--digit-size', '0.4', '0.6',
        '--max-distractors', '1', '--stroke-layers', '0', '--noise-std',
        '0.01'
    ]
    tool.main(argv)
    first = capsys.readouterr().out
    assert 'written' in first and '(3 images)' in first
    tool.main(argv)
    assert 'up to date' in capsys.readouterr().out
    with open(out / 'meta.json', encoding='utf-8') as file:
        meta = file.read()
    assert '"digit_size_range":[0.4,0.6]' in meta
    assert '"max_distractors":1' in meta and '"seed":2' in meta
    with pytest.raises(SystemExit, match='max_distractors'):
        tool.main(['--out', str(tmp_path / 'bad'), '--max-distractors', '-2'])


def test_command_line_defaults():
    args = load_tool().parse_args([])
    assert (args.out, args.image_size, args.num_train, args.num_val,
            args.num_holdout) == ('data/digit_crops', 32, 10000, 20000, 20000)
