"""Live mask detection: camera_node + detector_node (+ viewer_node) in one namespace.

    ros2 launch mask_detection live.launch.py source:=/dev/video0 width:=640 height:=480
    ros2 launch mask_detection live.launch.py namespace:=front source:=0
    ros2 launch mask_detection live.launch.py use_camera:=false image_topic:=/robot/camera/image
    ros2 launch mask_detection live.launch.py ... managed:=true    # lifecycle detector
    ros2 launch mask_detection live.launch.py ... greeter:=true speak:=true
    ros2 launch mask_detection live.launch.py viewer_port:=8081   # http://127.0.0.1:8081/

Launch arguments override the values in params_file (default: config/detector.yaml).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, RegisterEventHandler,
                            SetEnvironmentVariable, UnsetEnvironmentVariable)
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import (AndSubstitution, EnvironmentVariable, LaunchConfiguration,
                                  PythonExpression)
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
        DeclareLaunchArgument('source', default_value='0', description=(
            "Camera index ('0'), device (/dev/video0), video file, stream URL or GStreamer "
            'pipeline.')),
        DeclareLaunchArgument('width', default_value='0',
                              description='Image width in pixels; 0 = the source size.'),
        DeclareLaunchArgument('height', default_value='0',
                              description='Image height in pixels; 0 = the source size.'),
        DeclareLaunchArgument('loop', default_value='false',
                              description='A video file: rewind at the end instead of stopping '
                                          'the camera (other sources ignore it).'),
        DeclareLaunchArgument('fps', default_value='0.0',
                              description='Camera rate in Hz; 0 = the source rate.'),
        DeclareLaunchArgument('frame_id', default_value='camera',
                              description='header.frame_id of the images.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes (one per camera).'),
        DeclareLaunchArgument('face_detector', default_value='auto',
                              description="'auto', 'centerface' or 'haar'."),
        DeclareLaunchArgument('model_path', default_value='',
                              description='Mask classifier model file; empty = shipped model.'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(config, 'detector.yaml'),
                              description='detector_node parameter file.'),
        DeclareLaunchArgument('camera_params_file',
                              default_value=os.path.join(config, 'camera.yaml'),
                              description='camera_node parameter file.'),
        DeclareLaunchArgument('use_camera', default_value='true',
                              description='false: only the detector, on image_topic.'),
        DeclareLaunchArgument('image_topic', default_value='image_raw',
                              description='Image topic the detector subscribes to.'),
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
        DeclareLaunchArgument(
            'qos_reliability',
            # A file is played once: reliable delivery repairs the frames sent while the
            # detector's reader was still matching (best effort loses the first few).
            default_value=PythonExpression([
                "'reliable' if __import__('os').path.isfile(r'''",
                LaunchConfiguration('source'), "''') else 'best_effort'"]),
            description="Detector image subscription: 'best_effort' or 'reliable'; default: "
                        'reliable for a video file, best_effort (sensor data) otherwise.'),
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
        condition=IfCondition(LaunchConfiguration('use_camera')),
        parameters=[LaunchConfiguration('camera_params_file'), {
            'source': ParameterValue(LaunchConfiguration('source'), value_type=str),
            'width': ParameterValue(LaunchConfiguration('width'), value_type=int),
            'height': ParameterValue(LaunchConfiguration('height'), value_type=int),
            'loop': ParameterValue(LaunchConfiguration('loop'), value_type=bool),
            'fps': ParameterValue(LaunchConfiguration('fps'), value_type=float),
            'frame_id': ParameterValue(LaunchConfiguration('frame_id'), value_type=str),
            # A file plays once the detector listens, from its first frame (cameras ignore it).
            'wait_for_subscribers': 1,
        }])
    # detector_node and managed_detector_node take the same options.
    detector_options = dict(
        package=PACKAGE, name='detector_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        remappings=[('image', LaunchConfiguration('image_topic'))],
        parameters=[LaunchConfiguration('params_file'), {
            'qos_reliability': ParameterValue(LaunchConfiguration('qos_reliability'),
                                              value_type=str),
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
