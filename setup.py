"""Install the FCDFN BasicSR plugin: ``pip install -e .`` (see the Makefile for the full set-up)."""
from setuptools import find_packages, setup

setup(
    name='fcdfn_plugin',
    version='0.1.0',
    description='Flash Compensated Dynamic Filtering Network (FCDFN) as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['fcdfn_plugin', 'fcdfn_plugin.*']),
    python_requires='>=3.9',
    # torch/torchvision are installed first and pinned by the Makefile; listing them here
    # would let pip pull a different build.
    install_requires=['basicsr==1.4.2', 'numpy', 'opencv-python', 'lmdb', 'mmengine', 'lpips', 'scikit-image', 'tqdm',
                      'Pillow', 'PyYAML'],
    license='Apache-2.0',
)
