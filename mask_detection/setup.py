"""Install mask_detection: the Python module, console scripts and share/ files."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'mask_detection'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + PACKAGE + '/models', glob('models/*.pt') + glob('models/*.md')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='mask_detection maintainers',
    maintainer_email='maintainers@mask-detection.org',
    description='Real-time face mask detection for ROS 2.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'camera_node = mask_detection.camera_node:main',
            'detector_node = mask_detection.detector_node:main',
            'managed_detector_node = mask_detection.managed_detector_node:main',
            'greeter_node = mask_detection.greeter_node:main',
            'demo_recorder = mask_detection.demo_recorder:main',
            'viewer_node = mask_detection.viewer_node:main',
        ],
    },
)
