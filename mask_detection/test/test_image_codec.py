"""Tests of sensor_msgs/Image <-> numpy conversion, on the real message.

The codec is plain Python (no rclpy) and takes any object with Image's fields, so the round trip
and padding cases also run on a plain dataclass; every other case uses the real message.
"""
import array
from dataclasses import dataclass, field
import sys

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image as RosImage
import skimage.data

from mask_detection.image_codec import (
    array_to_image_msg, ENCODINGS, image_msg_to_array, image_msg_to_bgr,
    image_msg_to_raw_array, ImageConversionError)


@dataclass
class PlainImage:
    """The fields of sensor_msgs/Image, nothing else: what a ROS-free caller may pass."""

    height: int = 0
    width: int = 0
    encoding: str = ''
    is_bigendian: int = 0
    step: int = 0
    data: object = field(default_factory=bytes)
    header: object = None


MESSAGE_TYPES = [PlainImage, RosImage]


def _ros_image(height, width, encoding, is_bigendian, step, data):
    """Return a real sensor_msgs/Image with these fields (no consistency checks)."""
    return RosImage(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
                    step=step, data=data)


@pytest.fixture(scope='module')
def bgr():
    # A real photo, odd-sized so that row padding matters.
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image[13:13 + 101, 7:7 + 77])


def _in_encoding(bgr, encoding):
    """Return the photo in `encoding` and the BGR image a reader should get back."""
    if encoding == 'bgr8':
        return bgr, bgr
    if encoding == 'rgb8':
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), bgr
    if encoding == 'bgra8':
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), bgr
    if encoding == 'rgba8':
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), bgr
    if encoding == 'mono8':
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return grey, grey
    if encoding == 'mono16':
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
        return grey, grey
    # YUV 4:2:2: build the raw bytes from the photo, expect OpenCV's decoding of them.
    yuv = cv2.cvtColor(bgr[:, :76], cv2.COLOR_BGR2YUV)
    raw = np.empty(yuv.shape[:2] + (2,), np.uint8)
    raw[:, :, 0] = yuv[:, :, 0]
    raw[:, 0::2, 1] = yuv[:, 0::2, 1]
    raw[:, 1::2, 1] = yuv[:, 0::2, 2]
    if encoding == 'yuv422':  # UYVY: chroma first
        raw = raw[:, :, ::-1].copy()
        return raw, cv2.cvtColor(raw, cv2.COLOR_YUV2BGR_UYVY)
    return raw, cv2.cvtColor(raw, cv2.COLOR_YUV2BGR_YUY2)


def _padded_msg(msg_type, image, encoding, padding, big_endian=False):
    """Build a message by hand with `padding` junk bytes after every row."""
    height, width = image.shape[:2]
    if big_endian:
        image = image.astype('>u2')
    rows = np.ascontiguousarray(image).view(np.uint8).reshape(height, -1)
    junk = np.full((height, padding), 0xAB, np.uint8)
    data = np.concatenate([rows, junk], axis=1).tobytes()
    msg = msg_type()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = int(big_endian)
    msg.step = rows.shape[1] + padding
    msg.data = array.array('B', data) if msg_type is RosImage else data
    return msg


@pytest.mark.parametrize('msg_type', MESSAGE_TYPES)
@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_every_encoding(bgr, msg_type, encoding):
    image, expected_bgr = _in_encoding(bgr, encoding)
    msg = array_to_image_msg(image, encoding, msg=msg_type())
    assert (msg.height, msg.width, msg.encoding) == (image.shape[0], image.shape[1], encoding)
    assert msg.step == image.shape[1] * image.itemsize * (image.shape[2] if image.ndim == 3
                                                          else 1)
    assert len(msg.data) == msg.step * msg.height
    np.testing.assert_array_equal(image_msg_to_raw_array(msg), image)
    converted = image_msg_to_array(msg)
    if image.ndim == 2:
        np.testing.assert_array_equal(converted, image)
    else:
        np.testing.assert_array_equal(converted, expected_bgr)
    bgr_out = image_msg_to_bgr(msg)
    assert bgr_out.shape == image.shape[:2] + (3,) and bgr_out.dtype == np.uint8


@pytest.mark.parametrize('msg_type', MESSAGE_TYPES)
@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
@pytest.mark.parametrize('padding', [1, 3, 64])
def test_padded_rows_are_skipped(bgr, msg_type, encoding, padding):
    image, expected_bgr = _in_encoding(bgr, encoding)
    msg = _padded_msg(msg_type, image, encoding, padding)
    raw = image_msg_to_raw_array(msg)
    np.testing.assert_array_equal(raw, image)
    if image.ndim == 3:
        np.testing.assert_array_equal(image_msg_to_array(msg), expected_bgr)


@pytest.mark.parametrize('msg_type', MESSAGE_TYPES)
@pytest.mark.parametrize('encoding', ['bgr8', 'mono8'])
def test_reads_are_zero_copy_views(bgr, msg_type, encoding):
    image, _ = _in_encoding(bgr, encoding)
    msg = _padded_msg(msg_type, image, encoding, padding=5)
    view = image_msg_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    if encoding == 'bgr8':
        assert image_msg_to_bgr(msg).base is not None  # still a view, not a copy
        # OpenCV accepts the padded view as is.
        assert cv2.cvtColor(view, cv2.COLOR_BGR2GRAY).shape == image.shape[:2]


@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_honours_is_bigendian(big_endian):
    image = ((np.arange(12 * 10).reshape(12, 10) * 541) % 65536).astype(np.uint16)
    msg = _padded_msg(RosImage, image, 'mono16', padding=2, big_endian=big_endian)
    out = image_msg_to_array(msg)
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(image_msg_to_bgr(msg)[:, :, 1], (image >> 8).astype(np.uint8))


def test_eight_bit_encodings_ignore_is_bigendian(bgr):
    msg = _padded_msg(RosImage, bgr, 'bgr8', padding=0)
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_msg_to_array(msg), bgr)


def test_mono16_written_in_native_order_is_labelled_so():
    image = np.array([[1, 258], [65535, 4096]], np.uint16)
    msg = array_to_image_msg(image, 'mono16', msg=RosImage())
    assert msg.is_bigendian == int(sys.byteorder == 'big')
    np.testing.assert_array_equal(image_msg_to_array(msg), image)


def test_creates_a_real_message_with_header_when_none_is_given(bgr):
    from std_msgs.msg import Header
    header = Header(frame_id='camera')
    header.stamp.sec = 42
    msg = array_to_image_msg(bgr, header=header)
    assert isinstance(msg, RosImage)
    assert msg.header.frame_id == 'camera' and msg.header.stamp.sec == 42
    assert msg.encoding == 'bgr8'
    np.testing.assert_array_equal(image_msg_to_array(msg), bgr)


def test_writes_non_contiguous_arrays(bgr):
    view = bgr[::2, 1::3]
    msg = array_to_image_msg(view, 'bgr8', msg=RosImage())
    np.testing.assert_array_equal(image_msg_to_array(msg), view)


def test_reads_list_data(bgr):
    small = bgr[:4, :5]
    msg = _ros_image(4, 5, 'bgr8', 0, 15, list(small.tobytes()))
    np.testing.assert_array_equal(image_msg_to_array(msg), small)


def test_writes_reuse_a_given_message(bgr):
    msg = RosImage(encoding='rgb8', height=1, width=1, step=3, data=bytes(3))
    out = array_to_image_msg(bgr, 'bgr8', msg=msg)
    assert out is msg and msg.encoding == 'bgr8'
    assert (msg.height, msg.width, msg.step) == (bgr.shape[0], bgr.shape[1], bgr.shape[1] * 3)
    assert isinstance(msg.data, array.array)
    np.testing.assert_array_equal(image_msg_to_array(msg), bgr)


@pytest.mark.parametrize('msg, message', [
    (_ros_image(2, 2, 'bgr16', 0, 12, bytes(24)), 'unsupported image encoding'),
    (_ros_image(2, 2, '', 0, 6, bytes(12)), 'unsupported image encoding'),
    (_ros_image(0, 2, 'bgr8', 0, 6, b''), 'zero size'),
    (_ros_image(2, 0, 'bgr8', 0, 0, b''), 'zero size'),
    (_ros_image(2, 2, 'bgr8', 0, 5, bytes(12)), 'step 5 is smaller'),
    (_ros_image(2, 2, 'bgr8', 0, 6, bytes(11)), r'expected step \* height'),
    (_ros_image(2, 2, 'mono16', 0, 3, bytes(6)), 'step 3 is smaller'),
    (_ros_image(1, 1, 'rgba8', 0, 4, b''), r'expected step \* height'),
])
def test_bad_messages_raise_clear_errors(msg, message):
    with pytest.raises(ImageConversionError, match=message):
        image_msg_to_array(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_msg_to_bgr(msg)


@pytest.mark.parametrize('image, encoding, message', [
    (np.zeros((4, 4, 3), np.float32), 'bgr8', 'dtype uint8'),
    (np.zeros((4, 4), np.uint8), 'bgr8', '3 channel'),
    (np.zeros((4, 4, 3), np.uint8), 'mono8', '1 channel'),
    (np.zeros((4, 4, 3), np.uint8), 'bgra8', '4 channel'),
    (np.zeros((4, 4), np.uint8), 'mono16', 'dtype uint16'),
    (np.zeros((0, 4, 3), np.uint8), 'bgr8', 'zero size'),
    (np.zeros((4, 4, 3), np.uint8), 'jpeg', 'unsupported image encoding'),
    ([[1, 2], [3, 4]], 'mono8', 'numpy array'),
])
def test_bad_arrays_raise_clear_errors(image, encoding, message):
    with pytest.raises(ImageConversionError, match=message):
        array_to_image_msg(image, encoding, msg=RosImage())
