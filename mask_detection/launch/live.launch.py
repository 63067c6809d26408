"""Live mask detection: camera_node + detector_node (+ viewer_node) in one namespace.

    ros2 launch mask_detection live.launch.py source:=/dev/video0 width:=640 height:=480
    ros2 launch mask_detection live.launch.py namespace:=front source:=0
    ros2 launch mask_detection live.launch.py use_camera:=false image_topic:=/robot/camera/image
    ros2 launch mask_detection live.launch.py viewer_port:=8081   # http://127.0.0.1:8081/

Launch arguments override the values in params_file (default: config/detector.yaml).
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
        condition=IfCondition(LaunchConfiguration('use_camera')),
        parameters=[LaunchConfiguration('camera_params_file'), {
            'source': ParameterValue(LaunchConfiguration('source'), value_type=str),
            'width': ParameterValue(LaunchConfiguration('width'), value_type=int),
            'height': ParameterValue(LaunchConfiguration('height'), value_type=int),
            'fps': ParameterValue(LaunchConfiguration('fps'), value_type=float),
            'frame_id': ParameterValue(LaunchConfiguration('frame_id'), value_type=str),
        }])
    detector = Node(
        package=PACKAGE, executable='detector_node', name='detector_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        remappings=[('image', LaunchConfiguration('image_topic'))],
        parameters=[LaunchConfiguration('params_file'), {
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
