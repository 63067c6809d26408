"""Mask detection on a video file: camera_node plays it, detector_node processes it.

viewer_node shows the result at http://127.0.0.1:8080/ (viewer:=false to leave it out).

    ros2 launch mask_detection video.launch.py video:=/path/to/clip.mp4 loop:=true

The camera node starts playing once the detector subscribes; without loop it exits at the
end of the file and the detector keeps running.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'mask_detection'


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, 'config')
    arguments = [
        DeclareLaunchArgument('video', description='Video file to play (required).'),
        DeclareLaunchArgument('loop', default_value='false',
                              description='Rewind at the end instead of stopping the camera.'),
        DeclareLaunchArgument('fps', default_value='0.0',
                              description='Playback rate in Hz; 0 = the file rate.'),
        DeclareLaunchArgument('frame_id', default_value='camera',
                              description='header.frame_id of the images.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes.'),
        DeclareLaunchArgument('face_detector', default_value='auto',
                              description="'auto', 'centerface' or 'haar'."),
        DeclareLaunchArgument('model_path', default_value='',
                              description='Mask classifier model file; empty = shipped model.'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(config, 'detector.yaml'),
                              description='detector_node parameter file.'),
        DeclareLaunchArgument('viewer', default_value='true',
                              description='Start viewer_node: the live view in a browser.'),
        DeclareLaunchArgument('viewer_host', default_value='127.0.0.1',
                              description='Address the live view listens on; 0.0.0.0 = every '
                                          'interface (other machines see the faces).'),
        DeclareLaunchArgument('viewer_port', default_value='8080',
                              description='TCP port of the live view (http://HOST:PORT/).'),
        DeclareLaunchArgument(
            'fastdds_profile',
            default_value=EnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                              default_value=os.path.join(
                                                  config, 'fastdds_large_shm.xml')),
            description='Fast DDS profile for these nodes (large images via shared memory, '
                        'UDP on every interface).'),
    ]
    camera = Node(
        package=PACKAGE, executable='camera_node', name='camera_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        parameters=[os.path.join(config, 'camera.yaml'), {
            'source': ParameterValue(LaunchConfiguration('video'), value_type=str),
            'loop': ParameterValue(LaunchConfiguration('loop'), value_type=bool),
            'wait_for_subscribers': 1,      # play once the detector listens (discovery)
            'fps': ParameterValue(LaunchConfiguration('fps'), value_type=float),
            'frame_id': ParameterValue(LaunchConfiguration('frame_id'), value_type=str),
        }])
    detector = Node(
        package=PACKAGE, executable='detector_node', name='detector_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        remappings=[('image', 'image_raw')],
        parameters=[LaunchConfiguration('params_file'), {
            # Reliable for a file: a frame sent before the reader side matched is repaired,
            # not lost (processing still takes only the newest frame).
            'qos_reliability': 'reliable',
            'face_detector': ParameterValue(LaunchConfiguration('face_detector'),
                                            value_type=str),
            'model_path': ParameterValue(LaunchConfiguration('model_path'), value_type=str),
        }])
    viewer = Node(
        package=PACKAGE, executable='viewer_node', name='viewer_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        condition=IfCondition(LaunchConfiguration('viewer')),
        parameters=[os.path.join(config, 'viewer.yaml'), {
            'host': ParameterValue(LaunchConfiguration('viewer_host'), value_type=str),
            'port': ParameterValue(LaunchConfiguration('viewer_port'), value_type=int),
        }])
    return LaunchDescription(arguments + [
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               LaunchConfiguration('fastdds_profile')),
        camera,
        detector,
        viewer,
    ])
