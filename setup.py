# Copyright (c) mmkd_plugin contributors.
import os.path as osp
import sysconfig

from setuptools import find_packages, setup


def read_version() -> str:
    scope = {}
    with open(osp.join('mmkd_plugin', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def site_packages_dir() -> str:
    """site-packages relative to the install prefix, for the .pth file."""
    return osp.relpath(sysconfig.get_path('purelib'),
                       sysconfig.get_path('data'))


setup(
    name='mmkd_plugin',
    version=read_version(),
    description='Knowledge distillation for MMDetection 3.x detectors',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tools', 'configs')),
    py_modules=['_mmkd_plugin_scope'],
    include_package_data=True,
    package_data={'mmkd_plugin': ['.mim/configs/*.py',
                                  '.mim/configs/_base_/*.py']},
    # Imports _mmkd_plugin_scope at start-up: `mmkd_plugin::` config bases.
    data_files=[(site_packages_dir(), ['mmkd_plugin_scope.pth'])],
    install_requires=['mmengine>=0.10.0,<0.11', 'mmdet==3.3.0', 'numpy<2'],
    zip_safe=False,
)
