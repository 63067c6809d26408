"""The compressed transport on a real DDS graph (one machine): camera_node and detector_node.

camera_node offers image_raw/compressed only while someone subscribes; detector_node with
image_transport:=compressed subscribes to <image>/compressed, decodes JPEG and PNG, treats a
corrupt payload as a bad frame and offers annotated_image/compressed.
"""
from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, NodeProcess, write_video
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
import skimage.data

from mask_detection.image_codec import array_to_compressed_msg, msg_to_bgr
from mask_detection_msgs.msg import MaskDetectionArray

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _stamp(header):
    return header.stamp.sec, header.stamp.nanosec


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.mark.graph
def test_camera_compresses_only_while_subscribed(tmp_path):
    video = write_video(tmp_path / 'astronaut.avi', ASTRONAUT, 20, 20.0)
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        raw = client.collect(Image, 'image_raw', RELIABLE)
        with NodeProcess('camera_node', domain, tmp_path, params={
                'source': str(video), 'fps': 10.0, 'loop': True, 'jpeg_quality': 90,
                'frame_id': 'robot_camera'}) as camera:
            # The rate line every 5 s names the compressed frames sent, when there were any.
            assert client.spin_until(lambda: camera.count(r'publishing 512x512') >= 1,
                                     timeout=30), camera.log()
            assert raw and 'compressed' not in camera.log(), camera.log()
            compressed = client.collect(CompressedImage, 'image_raw/compressed', RELIABLE)
            assert client.spin_until(lambda: len(compressed) >= 5, timeout=20), camera.log()
            assert client.spin_until(
                lambda: camera.count(r'compressed \(JPEG, [0-9.]+ kB mean\)') >= 1,
                timeout=15), camera.log()
            assert camera.stop() == 0, camera.log()
    raw_by_stamp = {_stamp(msg.header): msg for msg in raw}
    matched = 0
    for msg in compressed:
        assert msg.format == 'bgr8; jpeg compressed bgr8'
        assert msg.header.frame_id == 'robot_camera'
        if _stamp(msg.header) in raw_by_stamp:      # the same header as the raw image
            matched += 1
            decoded = msg_to_bgr(msg)
            assert _psnr(decoded, msg_to_bgr(raw_by_stamp[_stamp(msg.header)])) > 30.0
    assert matched >= 3, "compressed images do not carry the raw images' headers"


def _jpeg_msg(image, stamp, quality=85, compression='jpeg'):
    msg = array_to_compressed_msg(image, compression, quality, msg=CompressedImage())
    msg.header.frame_id = 'remote_camera'
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


@pytest.mark.graph
def test_detector_on_compressed_images_skips_bad_payloads(tmp_path, model_path):
    """Corrupt and truncated payloads: one ERROR each, node keeps going; JPEG and PNG work."""
    domain = ros_domain_id()
    good_jpeg = _jpeg_msg(ASTRONAUT, (42, 1))
    good_png = _jpeg_msg(ASTRONAUT, (43, 2), compression='png')
    truncated = _jpeg_msg(ASTRONAUT, (44, 3))
    truncated.data = bytes(good_jpeg.data)[:len(good_jpeg.data) // 2]
    garbage = _jpeg_msg(ASTRONAUT, (45, 4))
    garbage.data = b'\xff\xd8\xff' + bytes(range(256)) * 8 + b'\xff\xd9'
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'camera/detections', RELIABLE)
        annotated = client.collect(CompressedImage, 'camera/annotated_image/compressed',
                                   RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path, namespace='camera', params={
                'model_path': str(model_path), 'image_transport': 'compressed'},
                remaps={'image': 'image_raw'}) as detector:
            # <image>/compressed after remapping, as image_transport names it.
            assert detector.wait_for_log(r'listening on /camera/image_raw/compressed',
                                         timeout=60), detector.log()
            publisher = client.publisher(CompressedImage, 'camera/image_raw/compressed',
                                         RELIABLE)
            for count, (bad, what) in enumerate(((truncated, 'truncated JPEG'),
                                                 (garbage, 'corrupt JPEG')), start=1):
                assert client.publish_until(
                    publisher, bad, lambda: detector.count(r'\[ERROR\]') >= count,
                    timeout=15), detector.log()
                errors = [line for line in detector.log().splitlines() if '[ERROR]' in line]
                assert what in errors[-1] and 'compressed' in errors[-1], detector.log()
            assert detector.running
            for good in (good_jpeg, good_png):
                assert client.publish_until(
                    publisher, good,
                    lambda: any(_stamp(m.header) == _stamp(good.header) for m in arrays),
                    timeout=20), detector.log()
            assert client.spin_until(lambda: annotated, timeout=10), detector.log()
            assert detector.stop() == 0, detector.log()
    stamps = {_stamp(msg.header) for msg in arrays}
    assert stamps <= {(42, 1), (43, 2)}, f'a bad frame produced detections: {stamps}'
    for msg in arrays:
        assert msg.header.frame_id == 'remote_camera'
        assert (msg.image_width, msg.image_height) == (512, 512)
        assert len(msg.detections) >= 1
    picture = annotated[-1]
    assert picture.format == 'bgr8; jpeg compressed bgr8'
    assert _stamp(picture.header) in stamps
    assert msg_to_bgr(picture).shape == ASTRONAUT.shape


@pytest.mark.graph
def test_unknown_image_transport_exits_with_one_clear_error(tmp_path, model_path):
    with NodeProcess('detector_node', ros_domain_id(), tmp_path, params={
            'model_path': str(model_path), 'image_transport': 'theora'}) as detector:
        exit_code = detector.wait(timeout=60)
    log = detector.log()
    assert exit_code == 1, log
    fatal = [line for line in log.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and 'image_transport' in fatal[0] and 'theora' in fatal[0], log
