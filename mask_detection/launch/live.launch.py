"""Live mask detection: camera_node + detector_node in one namespace.

    ros2 launch mask_detection live.launch.py source:=/dev/video0 width:=640 height:=480
    ros2 launch mask_detection live.launch.py namespace:=front source:=0
    ros2 launch mask_detection live.launch.py use_camera:=false image_topic:=/robot/camera/image

Launch arguments override the values in params_file (default: config/detector.yaml).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, \
    UnsetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

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
        DeclareLaunchArgument(
            'qos_reliability',
            # A file is played once: reliable delivery repairs the frames sent while the
            # detector's reader was still matching (best effort loses the first few).
            default_value=PythonExpression([
                "'reliable' if __import__('os').path.isfile(r'''",
                LaunchConfiguration('source'), "''') else 'best_effort'"]),
            description="Detector image subscription: 'best_effort' or 'reliable'; default: "
                        'reliable for a video file, best_effort (sensor data) otherwise.'),
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
            'fps': ParameterValue(LaunchConfiguration('fps'), value_type=float),
            'frame_id': ParameterValue(LaunchConfiguration('frame_id'), value_type=str),
            # A file plays once the detector listens, from its first frame (cameras ignore it).
            'wait_for_subscribers': 1,
        }])
    detector = Node(
        package=PACKAGE, executable='detector_node', name='detector_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        remappings=[('image', LaunchConfiguration('image_topic'))],
        parameters=[LaunchConfiguration('params_file'), {
            'qos_reliability': ParameterValue(LaunchConfiguration('qos_reliability'),
                                              value_type=str),
            'face_detector': ParameterValue(LaunchConfiguration('face_detector'),
                                            value_type=str),
            'model_path': ParameterValue(LaunchConfiguration('model_path'), value_type=str),
        }])
    return LaunchDescription(arguments + [
        # FASTRTPS_DEFAULT_PROFILES_FILE for Fast DDS 2.x (Jazzy, Humble), FASTDDS_... for 3
        # (Kilted), not both: Kilted's RMW would load it twice and log XMLPARSER errors.
        SetEnvironmentVariable(profile_variable, LaunchConfiguration('fastdds_profile')),
        UnsetEnvironmentVariable(other_profile_variable),
        camera,
        detector,
    ])
