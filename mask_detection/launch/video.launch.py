"""Mask detection on a video file: camera_node plays it, detector_node processes it.

viewer_node shows the result at http://127.0.0.1:8080/ (viewer:=false to leave it out).

    ros2 launch mask_detection video.launch.py video:=/path/to/clip.mp4 loop:=true
    ros2 launch mask_detection video.launch.py ... managed:=true    # lifecycle detector
    ros2 launch mask_detection video.launch.py ... greeter:=true speak:=true

live.launch.py with source:=VIDEO and a reliable image subscription; every other argument of
live.launch.py applies (ros2 launch mask_detection video.launch.py --show-args).  The camera
node starts playing once the detector subscribes; without loop it exits at the end of the file
and the detector keeps running.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    live = os.path.join(get_package_share_directory('mask_detection'), 'launch',
                        'live.launch.py')
    return LaunchDescription([
        DeclareLaunchArgument('video', description='Video file to play (required).'),
        DeclareLaunchArgument('loop', default_value='false',
                              description='Rewind at the end instead of stopping the camera.'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(live), launch_arguments={
            'source': LaunchConfiguration('video'),
            'loop': LaunchConfiguration('loop'),
            # Reliable for a file: a frame sent before the reader side matched is repaired,
            # not lost (processing still takes only the newest frame).
            'qos_reliability': 'reliable',
        }.items()),
    ])
