# Copyright (c) mmkd_plugin contributors.
import os.path as osp
import shutil
import sysconfig

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Copied into mmkd_plugin/.mim/ of a built package, where mim (`mim train
# mmkd_plugin CONFIG`) looks for a package's tools and configs and where
# `mmkd_plugin::` config paths resolve (_mmkd_plugin_scope.py).
MIM_FOLDERS = ('configs', 'tools')
# The demo (scikit-learn makes the digit scenes, matplotlib draws the charts
# and tools/visualize_features.py) and the test suite.
DEMO_REQUIRES = ['scikit-learn', 'matplotlib']
TESTS_REQUIRES = DEMO_REQUIRES + ['pytest', 'pytest-xdist', 'pycocotools']


def read_version() -> str:
    scope = {}
    with open(osp.join('mmkd_plugin', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def site_packages_dir() -> str:
    """site-packages relative to the install prefix, for the .pth file."""
    return osp.relpath(sysconfig.get_path('purelib'),
                       sysconfig.get_path('data'))


class BuildPyWithMim(build_py):
    """build_py that also copies :data:`MIM_FOLDERS` into ``.mim/``.

    Editable installs skip it: there, configs and tools stay in the checkout
    (``mmkd_plugin::`` paths fall back to its ``configs`` folder).
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        for folder in MIM_FOLDERS:
            target = osp.join(self.build_lib, 'mmkd_plugin', '.mim', folder)
            if osp.isdir(target):
                shutil.rmtree(target)
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))


setup(
    name='mmkd_plugin',
    version=read_version(),
    description='Knowledge distillation for MMDetection 3.x detectors',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tools', 'configs')),
    py_modules=['_mmkd_plugin_scope'],
    cmdclass={'build_py': BuildPyWithMim},
    # Imports _mmkd_plugin_scope at start-up: `mmkd_plugin::` config bases.
    data_files=[(site_packages_dir(), ['mmkd_plugin_scope.pth'])],
    install_requires=['mmengine>=0.10.0,<0.11', 'mmdet==3.3.0', 'numpy<2'],
    extras_require={'demo': DEMO_REQUIRES, 'tests': TESTS_REQUIRES},
    zip_safe=False,
)
