"""The interface package builds, imports and round-trips between two processes over DDS."""
import os
import subprocess
import sys
import textwrap
import time

from conftest import ros_domain_id
import pytest
import rclpy

from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray, VisitorEvent


def test_label_constants_follow_the_original_convention():
    assert (MaskDetection.MASK, MaskDetection.NO_MASK, MaskDetection.UNKNOWN) == (0, 1, 2)
    assert (VisitorEvent.VISITOR_APPEARED, VisitorEvent.MASK_STATE_CHANGED,
            VisitorEvent.VISITOR_LEFT) == (0, 1, 2)


def test_fields_and_types():
    fields = MaskDetection.get_fields_and_field_types()
    assert fields == {
        'x': 'int32', 'y': 'int32', 'width': 'int32', 'height': 'int32', 'label': 'uint8',
        'mask_probability': 'float', 'confidence': 'float', 'face_score': 'float',
        'track_id': 'uint32'}
    assert MaskDetectionArray.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'image_width': 'uint32', 'image_height': 'uint32',
        'detections': 'sequence<mask_detection_msgs/MaskDetection>'}
    assert set(VisitorEvent.get_fields_and_field_types()) == {
        'header', 'track_id', 'event', 'label', 'confidence', 'x', 'y', 'width', 'height'}


PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from rclpy.node import Node
    from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray

    rclpy.init()
    node = Node('round_trip_publisher')
    pub = node.create_publisher(MaskDetectionArray, 'detections', 10)
    msg = MaskDetectionArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    msg.header.frame_id = 'camera_optical_frame'
    msg.image_width, msg.image_height = 640, 480
    msg.detections = [
        MaskDetection(x=10, y=20, width=64, height=72, label=MaskDetection.MASK,
                      mask_probability=0.97, confidence=0.97, face_score=0.88, track_id=3),
        MaskDetection(x=300, y=100, width=30, height=31, label=MaskDetection.NO_MASK,
                      mask_probability=0.1, confidence=0.9, face_score=0.6, track_id=4)]
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()
""")


@pytest.mark.graph
def test_detection_array_round_trip_between_processes():
    domain = ros_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    publisher = subprocess.Popen([sys.executable, '-c', PUBLISHER, '20'], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    received = []
    try:
        node = rclpy.create_node('round_trip_listener', context=context)
        node.create_subscription(MaskDetectionArray, 'detections', received.append, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline and publisher.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        publisher.terminate()
        output = publisher.communicate(timeout=10)[0]
    assert received, \
        f'no MaskDetectionArray received in domain {domain}; publisher said:\n{output}'
    msg = received[0]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1700000000, 123456789)
    assert msg.header.frame_id == 'camera_optical_frame'
    assert (msg.image_width, msg.image_height) == (640, 480)
    assert [(d.x, d.y, d.width, d.height, d.label, d.track_id) for d in msg.detections] == [
        (10, 20, 64, 72, MaskDetection.MASK, 3), (300, 100, 30, 31, MaskDetection.NO_MASK, 4)]
    assert msg.detections[0].mask_probability == pytest.approx(0.97)
    assert msg.detections[1].confidence == pytest.approx(0.9)
