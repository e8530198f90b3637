"""Packaging of gpusq_mm: 2:4 sparsity + INT8 QAT + mixed KD for OpenMMLab."""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    """Read ``__version__`` from ``gpusq_mm/version.py`` without importing."""
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'gpusq_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(path: str) -> list:
    """Return the requirement lines of ``path`` without comments."""
    reqs = []
    with open(osp.join(osp.dirname(__file__), path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Ship ``configs/`` (with its ``metafile.yml`` files), ``tools/`` and
    ``model-index.yml`` inside the package as ``gpusq_mm/.mim/``
    (OpenMMLab's layout) when a wheel or an install is built, so that an
    installed gpusq_mm has its configs and CLI tools
    (:mod:`gpusq_mm.resources`). An editable install uses the checkout's
    folders and gets no copy."""
    if not {'bdist_wheel', 'install', 'sdist', 'build'} & set(sys.argv):
        return
    mim = osp.join(ROOT, 'gpusq_mm', '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        target = osp.join(mim, name)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        if name.endswith('.yml'):  # the index of the metafiles
            shutil.copyfile(osp.join(ROOT, name), target)
            continue
        shutil.copytree(osp.join(ROOT, name), target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


add_mim_extension()
setup(
    name='gpusq_mm',
    version=get_version(),
    description=('GPUSQ-ViT for OpenMMLab: 2:4 structured sparsity, INT8 '
                 'quantization-aware training and mixed knowledge '
                 'distillation, deployed as TensorRT INT8 sparse engines'),
    long_description=(open('README.md').read()
                      if osp.exists('README.md') else ''),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.10',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    package_data={'gpusq_mm': ['.mim/configs/**/*', '.mim/tools/**/*',
                               '.mim/model-index.yml']},
    entry_points={'console_scripts': [
        f'gpusq-{tool}=gpusq_mm.cli:{tool.replace("-", "_")}'
        for tool in ('train', 'test', 'deploy', 'demo', 'demo-data')]},
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require=dict(
        tests=parse_requirements('requirements/tests.txt'),
        optional=parse_requirements('requirements/optional.txt'),
    ),
    zip_safe=False,
)
