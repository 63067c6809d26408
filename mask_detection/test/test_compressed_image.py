"""sensor_msgs/CompressedImage (JPEG, PNG) <-> numpy: image_codec's compressed transport."""
import io

import cv2
import numpy as np
from PIL import Image as PilImage
import pytest
from sensor_msgs.msg import CompressedImage, Image
import skimage.data
from std_msgs.msg import Header

from mask_detection.image_codec import (
    array_to_compressed_msg, array_to_image_msg, compressed_format_string, compressed_msg_to_bgr,
    describe_msg, ImageConversionError, msg_to_bgr)

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _compressed(payload, format_string='bgr8; jpeg compressed bgr8'):
    msg = CompressedImage(format=format_string)
    msg.data = bytes(payload)
    return msg


def _pil_encoded(image_bgr, kind):
    """Encode with Pillow (not OpenCV): the decoder must read what other encoders write."""
    buffer = io.BytesIO()
    PilImage.fromarray(image_bgr[:, :, ::-1]).save(buffer, format=kind, quality=90)
    return buffer.getvalue()


def test_format_strings_are_image_transports():
    assert compressed_format_string('jpeg') == 'bgr8; jpeg compressed bgr8'
    assert compressed_format_string('png') == 'bgr8; png compressed bgr8'
    assert compressed_format_string('png', 'mono8') == 'mono8; png compressed '
    with pytest.raises(ImageConversionError, match='unsupported compression'):
        compressed_format_string('h264')


def test_jpeg_round_trip_keeps_header_and_image():
    header = Header(frame_id='robot_camera')
    header.stamp.sec, header.stamp.nanosec = 1234, 5678
    msg = array_to_compressed_msg(ASTRONAUT, 'jpeg', 90, header=header)
    assert isinstance(msg, CompressedImage)
    assert msg.format == 'bgr8; jpeg compressed bgr8'
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == \
        ('robot_camera', 1234, 5678)
    assert bytes(msg.data[:3]) == b'\xff\xd8\xff'
    decoded = msg_to_bgr(msg)
    assert decoded.shape == ASTRONAUT.shape and decoded.dtype == np.uint8
    assert _psnr(decoded, ASTRONAUT) > 30.0
    # Lower quality: fewer bytes, still the same picture.
    small = array_to_compressed_msg(ASTRONAUT, 'jpeg', 40)
    assert len(small.data) < 0.6 * len(msg.data)
    assert _psnr(msg_to_bgr(small), ASTRONAUT) > 25.0


def test_png_round_trip_is_lossless_and_mono_is_expanded():
    msg = array_to_compressed_msg(ASTRONAUT, 'png')
    assert msg.format == 'bgr8; png compressed bgr8'
    np.testing.assert_array_equal(msg_to_bgr(msg), ASTRONAUT)
    grey = cv2.cvtColor(ASTRONAUT, cv2.COLOR_BGR2GRAY)
    mono = array_to_compressed_msg(grey, 'png')
    assert mono.format == 'mono8; png compressed '
    decoded = msg_to_bgr(mono)
    assert decoded.shape == ASTRONAUT.shape
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], grey)


@pytest.mark.parametrize('kind, format_string', [
    ('JPEG', 'rgb8; jpeg compressed bgr8'), ('JPEG', 'jpeg'), ('PNG', 'png'), ('PNG', '')])
def test_other_encoders_and_old_format_strings_decode(kind, format_string):
    decoded = compressed_msg_to_bgr(_compressed(_pil_encoded(ASTRONAUT, kind), format_string))
    assert decoded.shape == ASTRONAUT.shape
    # Pillow's JPEG is close to the photo, its PNG equal: the channels were not swapped.
    assert _psnr(decoded, ASTRONAUT) > (30.0 if kind == 'JPEG' else 99.0)


def _jpeg_bytes():
    return bytes(array_to_compressed_msg(ASTRONAUT, 'jpeg', 80).data)


def _png_bytes():
    return bytes(array_to_compressed_msg(ASTRONAUT, 'png').data)


@pytest.mark.parametrize('payload, expected', [
    (lambda: _jpeg_bytes()[:len(_jpeg_bytes()) // 2], 'truncated JPEG'),
    (lambda: _jpeg_bytes()[:-2], 'truncated JPEG'),
    (lambda: _png_bytes()[:len(_png_bytes()) // 2], 'truncated PNG'),
    # Valid start and end markers around garbage: the decoder itself must reject it.
    (lambda: b'\xff\xd8\xff' + bytes(range(256)) * 4 + b'\xff\xd9', 'corrupt JPEG'),
    (lambda: _png_bytes()[:8] + b'\x00' * 500 + _png_bytes()[-12:], 'corrupt PNG'),
    (lambda: b'GIF89a' + b'\x00' * 100, 'neither JPEG nor PNG'),
    (lambda: b'', 'empty'),
])
def test_corrupt_or_truncated_payloads_raise_clear_errors(payload, expected):
    with pytest.raises(ImageConversionError, match=expected):
        msg_to_bgr(_compressed(payload()))


def test_compressed_depth_is_refused():
    with pytest.raises(ImageConversionError, match='compressedDepth'):
        compressed_msg_to_bgr(_compressed(_png_bytes(), '16UC1; compressedDepth png'))


def test_msg_to_bgr_takes_raw_images_too_and_descriptions_name_the_kind():
    raw = array_to_image_msg(ASTRONAUT, 'bgr8', msg=Image())
    np.testing.assert_array_equal(msg_to_bgr(raw), ASTRONAUT)
    assert describe_msg(raw) == "512x512 'bgr8'"
    compressed = array_to_compressed_msg(ASTRONAUT, 'jpeg', 80)
    assert describe_msg(compressed).startswith("compressed 'bgr8; jpeg compressed bgr8', ")


def test_bad_encoder_input_is_refused():
    with pytest.raises(ImageConversionError, match='quality'):
        array_to_compressed_msg(ASTRONAUT, 'jpeg', 0)
    with pytest.raises(ImageConversionError, match='dtype'):
        array_to_compressed_msg(ASTRONAUT.astype(np.float32), 'jpeg')
