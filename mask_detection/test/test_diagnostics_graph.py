"""/diagnostics of the installed detector_node on a DDS graph: hardware_id is the camera.

diagnostic_msgs' hardware_id names the hardware a status is about; detector_node reports the
frame_id of the images it processes (the camera), so one dashboard can tell two detectors on
two cameras apart.
"""
from conftest import ros_domain_id
from diagnostic_msgs.msg import DiagnosticArray
from graph_utils import GraphClient, NodeProcess
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mask_detection.image_codec import array_to_image_msg
from mask_detection_msgs.msg import MaskDetectionArray

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.mark.graph
def test_hardware_id_is_the_frame_id_of_the_images_received(tmp_path):
    frame = np.full((240, 320, 3), 90, np.uint8)
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        diagnostics = client.collect(DiagnosticArray, '/diagnostics', RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path) as detector:
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=60.0)
            for index, camera in enumerate(('front_camera_optical', 'rear_camera_optical')):
                msg = array_to_image_msg(frame, 'bgr8', header=Header(frame_id=camera))
                msg.header.stamp.sec = 10 + index
                assert client.publish_until(
                    publisher, msg, lambda: any(a.header.frame_id == camera for a in arrays),
                    timeout=60), detector.log()
                # A status from after that frame: processed before the next diagnostics tick.
                diagnostics.clear()
                assert client.spin_until(lambda: len(diagnostics) >= 2, timeout=30), \
                    detector.log()
                status = diagnostics[-1].status[0]
                assert 'detector' in status.name
                assert status.hardware_id == camera, (camera, status)
            assert detector.stop() == 0, detector.log()
