# Copyright (c) mmkd_plugin contributors.
"""The built package: a wheel (built offline from a copy of the checkout)
holds the configs and tools under mmkd_plugin/.mim, where mim looks for
them, the start-up .pth and the demo/tests extras. Installed from the
wheel outside the checkout, mim's lookup finds tools/train.py and the
configs in the installed package, ``mmkd_plugin::`` paths (config
inheritance and mmengine.hub.get_config) resolve to the installed copies,
and the command mim runs (``python .mim/tools/train.py CONFIG --launcher
none``) trains."""
import glob
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

from mmkd_plugin.utils.digit_scenes import generate_digit_scenes
from .conftest import CONFIG_DIR, REPO_ROOT

# What setup.py and MANIFEST.in read.
SOURCES = ['setup.py', 'pyproject.toml', 'MANIFEST.in', 'README.md',
           '_mmkd_plugin_scope.py', 'mmkd_plugin_scope.pth', 'mmkd_plugin',
           'configs', 'tools']
HANG_GUARD_S = 3 * 3600  # only against a hung process
CONFIGS = sorted(osp.relpath(p, CONFIG_DIR) for p in glob.glob(
    osp.join(CONFIG_DIR, '**', '*.py'), recursive=True))
TOOLS = sorted(name for name in os.listdir(osp.join(REPO_ROOT, 'tools'))
               if osp.isfile(osp.join(REPO_ROOT, 'tools', name)))


def run(args, cwd, env=None):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel of a clean copy of the checkout."""
    source = tmp_path_factory.mktemp('source')
    for name in SOURCES:
        path = osp.join(REPO_ROOT, name)
        if osp.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc', '*.egg-info'))
        else:
            shutil.copy(path, source / name)
    out = tmp_path_factory.mktemp('wheel')
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '-w', str(out), str(source)], source)
    (path, ) = out.glob('mmkd_plugin-*.whl')
    return path


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """The wheel installed into a folder of its own."""
    target = tmp_path_factory.mktemp('site')
    run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index',
         '--target', str(target), str(wheel)], target)
    return target


def test_wheel_holds_configs_tools_pth_and_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata, ) = [n for n in names if n.endswith('.dist-info/METADATA')]
        metadata = archive.read(metadata).decode()
    for config in CONFIGS:
        assert f'mmkd_plugin/.mim/configs/{config}' in names, config
    for tool in TOOLS:
        assert f'mmkd_plugin/.mim/tools/{tool}' in names, tool
    assert '_mmkd_plugin_scope.py' in names
    assert 'mmkd_plugin/engine/hooks/teacher_sanity_hook.py' in names
    assert any(n.endswith('/site-packages/mmkd_plugin_scope.pth')
               for n in names)
    assert not any(n.startswith(('tests/', 'configs/', 'tools/'))
                   for n in names)
    for extra in ('demo', 'tests'):
        assert f'Provides-Extra: {extra}' in metadata
    for requirement in ('scikit-learn', 'matplotlib'):
        for extra in ('demo', 'tests'):
            assert f'Requires-Dist: {requirement}; extra == "{extra}"' in \
                metadata
    assert 'Requires-Dist: pytest; extra == "tests"' in metadata


def installed_python(installed, code: str) -> list:
    """A command running ``code`` with the installed package and the
    environment's other packages, but not the checkout's (no editable
    install, no PYTHONPATH): ``-S`` skips site-packages' .pth files, this
    environment's site-packages folders are put on the path as plain
    folders and the installed folder is added as a site dir (its .pth
    runs)."""
    prelude = (
        'import site, sys\n'
        f'sys.path.insert(0, {str(installed)!r})\n'
        f'sys.path += {site.getsitepackages()!r}\n'
        f'site.addsitedir({str(installed)!r})\n')
    return [sys.executable, '-S', '-c', prelude + code]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PYTHONUNBUFFERED='1', **extra)
    return env


def test_installed_package_resolves_its_own_configs_and_tools(
        installed, tmp_path):
    package = installed / 'mmkd_plugin'
    code = (
        'import os, os.path as osp\n'
        'import pkg_resources\n'
        'import mmkd_plugin\n'
        "print('module', mmkd_plugin.__file__)\n"
        "print('scope', sys.modules['_mmkd_plugin_scope'].__file__)\n"
        # mim (openmim 0.3.9, mim/commands/train.py): the package root is
        # the distribution's location + its name, train.py is
        # <root>/.mim/tools/train.py, a config name is searched under root.
        "dist = pkg_resources.get_distribution('mmkd_plugin')\n"
        "root = osp.join(dist.location, 'mmkd_plugin')\n"
        "print('train', osp.isfile(osp.join(root, '.mim/tools/train.py')))\n"
        "found = [osp.join(d, 'cwd_retina_r18-w32_r18-w8_digits.py') for d, _, f\n"
        '         in os.walk(root, followlinks=True)\n'
        "         if 'cwd_retina_r18-w32_r18-w8_digits.py' in f]\n"
        "print('found', found)\n"
        'from mmengine.hub import get_config\n'
        "cfg = get_config('mmkd_plugin::cwd_retina_r18-w32_r18-w8_digits.py')\n"
        "print('hub', cfg.filename, cfg.model.type)\n"
        'from mmengine.config import Config\n'
        "with open('child.py', 'w') as f:\n"
        "    f.write(\"_base_ = 'mmkd_plugin::fgd_retina_r101_r18.py'\\n\")\n"
        "print('base', Config.fromfile('child.py').model.type)\n")
    out = run(installed_python(installed, code), tmp_path, clean_env())
    assert f'module {package}/__init__.py' in out
    assert f'scope {installed}/_mmkd_plugin_scope.py' in out
    assert 'train True' in out
    digits = f'{package}/.mim/configs/cwd_retina_r18-w32_r18-w8_digits.py'
    assert f"found ['{digits}']" in out
    assert f'hub {digits} DistillationDetector' in out
    assert 'base DistillationDetector' in out


def test_command_mim_runs_trains_from_the_installed_package(
        installed, tmp_path):
    generate_digit_scenes(str(tmp_path / 'scenes'), num_train=4, num_val=2,
                          seed=4)
    mim_dir = installed / 'mmkd_plugin' / '.mim'
    argv = [str(mim_dir / 'tools' / 'train.py'),
            str(mim_dir / 'configs' / 'retina_r18-w8_digits.py'),
            '--launcher', 'none', '--work-dir', str(tmp_path / 'work'),
            '--cfg-options', 'train_cfg.max_iters=1',
            'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None']
    code = ('import runpy\n'
            f'sys.argv = {argv!r}\n'
            f'runpy.run_path(sys.argv[0], run_name="__main__")\n')
    out = run(installed_python(installed, code), tmp_path,
              clean_env(DIGIT_SCENES_ROOT=str(tmp_path / 'scenes')))
    assert 'Iter(train) [1/1]' in out
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()
