"""Mask detection on a video file: camera_node plays it, detector_node processes it.

viewer_node shows the result at http://127.0.0.1:8080/ (viewer:=false to leave it out).

    ros2 launch mask_detection video.launch.py video:=/path/to/clip.mp4 loop:=true
    ros2 launch mask_detection video.launch.py ... managed:=true    # lifecycle detector
    ros2 launch mask_detection video.launch.py ... greeter:=true speak:=true

The camera node starts playing once the detector subscribes; without loop it exits at the
end of the file and the detector keeps running.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, RegisterEventHandler,
                            SetEnvironmentVariable, UnsetEnvironmentVariable)
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import AndSubstitution, EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from mask_detection.fastdds import profile_variable as fastdds_profile_variable

PACKAGE = 'mask_detection'


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, 'config')
    profile_variable, other_profile_variable = fastdds_profile_variable()
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
        DeclareLaunchArgument('managed', default_value='false', description=(
            'true: the detector as a managed (lifecycle) node, managed_detector_node '
            '(ros2 lifecycle set /detector_node configure|activate|deactivate|cleanup).')),
        DeclareLaunchArgument('autostart', default_value='true', description=(
            'With managed:=true: configure and activate the detector at once; false = leave '
            'it unconfigured for a lifecycle manager.')),
        DeclareLaunchArgument('greeter', default_value='false',
                              description='true: also start greeter_node (visitor greetings).'),
        DeclareLaunchArgument('speak', default_value='false',
                              description='greeter: also speak the greetings with espeak-ng.'),
        DeclareLaunchArgument('language', default_value='',
                              description="greeter: language of config/greetings.yaml ('en', "
                                          "'de', 'fr'); empty = the file's default."),
        DeclareLaunchArgument('viewer', default_value='true',
                              description='Start viewer_node: the live view in a browser.'),
        DeclareLaunchArgument('viewer_host', default_value='127.0.0.1',
                              description='Address the live view listens on; 0.0.0.0 = every '
                                          'interface (other machines see the faces).'),
        DeclareLaunchArgument('viewer_port', default_value='8080',
                              description='TCP port of the live view (http://HOST:PORT/).'),
        DeclareLaunchArgument(
            'fastdds_profile',
            default_value=EnvironmentVariable(
                'FASTDDS_DEFAULT_PROFILES_FILE', default_value=EnvironmentVariable(
                    'FASTRTPS_DEFAULT_PROFILES_FILE',
                    default_value=os.path.join(config, 'fastdds_large_shm.xml'))),
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
    # detector_node and managed_detector_node take the same options.
    detector_options = dict(
        package=PACKAGE, name='detector_node',
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
    managed = LaunchConfiguration('managed')
    detector = Node(executable='detector_node', condition=UnlessCondition(managed),
                    **detector_options)
    managed_detector = LifecycleNode(executable='managed_detector_node',
                                     condition=IfCondition(managed), **detector_options)
    autostart = IfCondition(AndSubstitution(managed, LaunchConfiguration('autostart')))
    # Autostart: configure now; activate once configuring has ended in 'inactive' (a later
    # deactivate also ends in 'inactive', but from 'deactivating': no re-activation).
    configure = EmitEvent(condition=autostart, event=ChangeState(
        lifecycle_node_matcher=matches_action(managed_detector),
        transition_id=Transition.TRANSITION_CONFIGURE))
    activate = RegisterEventHandler(condition=autostart, event_handler=OnStateTransition(
        target_lifecycle_node=managed_detector, start_state='configuring', goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(managed_detector),
            transition_id=Transition.TRANSITION_ACTIVATE))]))
    greeter = Node(
        package=PACKAGE, executable='greeter_node', name='greeter_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        condition=IfCondition(LaunchConfiguration('greeter')),
        parameters=[os.path.join(config, 'greeter.yaml'), {
            'speak': ParameterValue(LaunchConfiguration('speak'), value_type=bool),
            'language': ParameterValue(LaunchConfiguration('language'), value_type=str),
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
        # FASTRTPS_DEFAULT_PROFILES_FILE for Fast DDS 2.x (Jazzy, Humble), FASTDDS_... for 3
        # (Kilted), not both: Kilted's RMW would load it twice and log XMLPARSER errors.
        SetEnvironmentVariable(profile_variable, LaunchConfiguration('fastdds_profile')),
        UnsetEnvironmentVariable(other_profile_variable),
        camera,
        detector,
        managed_detector,
        activate,
        configure,
        greeter,
        viewer,
    ])
