"""sensor_msgs/Image and CompressedImage <-> numpy without cv_bridge (any object with the fields).

Reads are zero-copy where the layout allows (np.frombuffer over msg.data, honouring `step` row
padding); writes fill msg.data with an array.array('B'), the fast path of the generated message
class (assigning an ndarray or a list costs 13-65 ms per 640x480 frame).  Nothing here imports
rclpy; sensor_msgs is imported only when a new message must be created.  CompressedImage (JPEG,
PNG) follows image_transport's "compressed" transport; `msg_to_bgr` takes either kind.
"""
import array
from dataclasses import dataclass
import sys
from typing import Optional

import cv2
import numpy as np


class ImageConversionError(ValueError):
    """An image message or array cannot be converted (the message says what is wrong)."""


@dataclass(frozen=True)
class _Encoding:
    channels: int
    bytes_per_channel: int
    # cv2.cvtColor code to BGR; None = already BGR (or mono, returned as is).
    to_bgr: Optional[int]


# Encodings as in sensor_msgs/image_encodings.hpp.
ENCODINGS = {
    'bgr8': _Encoding(3, 1, None),
    'rgb8': _Encoding(3, 1, cv2.COLOR_RGB2BGR),
    'bgra8': _Encoding(4, 1, cv2.COLOR_BGRA2BGR),
    'rgba8': _Encoding(4, 1, cv2.COLOR_RGBA2BGR),
    'mono8': _Encoding(1, 1, None),
    'mono16': _Encoding(1, 2, None),
    'yuv422_yuy2': _Encoding(2, 1, cv2.COLOR_YUV2BGR_YUY2),
    # 'yuv422' in ROS is UYVY byte order.
    'yuv422': _Encoding(2, 1, cv2.COLOR_YUV2BGR_UYVY),
}


def _encoding(name) -> _Encoding:
    try:
        return ENCODINGS[name]
    except (KeyError, TypeError):
        raise ImageConversionError(
            f'unsupported image encoding {name!r}; supported: '
            f'{", ".join(sorted(ENCODINGS))}') from None


def _data_buffer(data) -> np.ndarray:
    """Return msg.data as a flat uint8 array, without a copy for bytes-like data."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else \
            np.frombuffer(data.tobytes(), np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        # A list of ints (e.g. a message built by hand): copy.
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_msg_to_raw_array(msg) -> np.ndarray:
    """Return the pixels in the message's own encoding (cv_bridge's 'passthrough').

    Shape HxW (mono), HxWx2 (yuv422*), HxWx3 or HxWx4; dtype uint8, or uint16 for mono16 in
    native byte order.  A view of msg.data when possible (row padding is skipped by strides).
    """
    enc = _encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'image has zero size ({width}x{height})')
    row_bytes = width * enc.channels * enc.bytes_per_channel
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width * bytes per pixel = {row_bytes} '
            f'({width} px of {msg.encoding})')
    data = _data_buffer(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            f'image data has {data.size} bytes, expected step * height = {step} * {height} '
            f'= {step * height}')
    rows = data[:step * height].reshape(height, step)[:, :row_bytes]
    if enc.bytes_per_channel == 2:
        big = bool(msg.is_bigendian)
        rows = rows.view('>u2' if big else '<u2')
        if big != (sys.byteorder == 'big'):
            rows = rows.astype(np.uint16)  # to native byte order (a copy)
    if enc.channels == 1:
        return rows
    return rows.reshape(height, width, enc.channels)


def image_msg_to_array(msg) -> np.ndarray:
    """Return the image as BGR (HxWx3 uint8) or mono (HxW, uint8 or uint16 for mono16).

    bgr8 and mono8/mono16 are zero-copy views of msg.data; other colour encodings are
    converted to BGR (a new array).
    """
    raw = image_msg_to_raw_array(msg)
    code = ENCODINGS[msg.encoding].to_bgr
    if code is None:
        return raw
    return cv2.cvtColor(raw, code)


def image_msg_to_bgr(msg) -> np.ndarray:
    """Return the image as HxWx3 uint8 BGR from any supported encoding (for the pipeline).

    A view of msg.data for bgr8; mono8 is expanded to three channels, mono16 is reduced to
    8 bits (high byte), like cv_bridge's conversion to bgr8.
    """
    image = image_msg_to_array(msg)
    if image.ndim == 3:
        return image
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def _check_array(image, encoding: str) -> _Encoding:
    enc = _encoding(encoding)
    if not isinstance(image, np.ndarray):
        raise ImageConversionError(f'image must be a numpy array, got {type(image).__name__}')
    dtype = np.uint16 if enc.bytes_per_channel == 2 else np.uint8
    if image.dtype != dtype:
        raise ImageConversionError(
            f'{encoding} needs dtype {np.dtype(dtype).name}, got {image.dtype}')
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else -1)
    if channels != enc.channels or image.ndim not in (2, 3):
        raise ImageConversionError(
            f'{encoding} needs {enc.channels} channel(s), got an array of shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageConversionError(f'image has zero size (shape {image.shape})')
    return enc


def array_to_image_msg(image: np.ndarray, encoding: str = 'bgr8', msg=None, header=None):
    """Fill `msg` (a new sensor_msgs/Image when None) with `image`, labelled `encoding`.

    Like cv_bridge's cv2_to_imgmsg the array must already be in that encoding (shape and
    dtype are checked; nothing is converted).  Rows are written unpadded (step = width *
    bytes per pixel); 16-bit data in this machine's byte order.  Returns the message.
    """
    enc = _check_array(image, encoding)
    if msg is None:
        try:
            from sensor_msgs.msg import Image
        except ImportError as error:
            raise ImageConversionError(
                'sensor_msgs is not importable: pass a message object as msg') from error
        msg = Image()
    if header is not None:
        msg.header = header
    height, width = image.shape[:2]
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(enc.bytes_per_channel > 1 and sys.byteorder == 'big')
    msg.step = width * enc.channels * enc.bytes_per_channel
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(image).view(np.uint8).data)
    msg.data = data
    return msg


# ---- sensor_msgs/CompressedImage (image_transport's "compressed" transport) -----------------

COMPRESSED_FORMATS = ('jpeg', 'png')
_JPEG_START = b'\xff\xd8\xff'
_JPEG_END = b'\xff\xd9'
_PNG_START = b'\x89PNG\r\n\x1a\n'
_PNG_END = b'IEND\xaeB`\x82'
# Bytes after the end marker that are still accepted (some encoders pad).
_TRAILER_SLACK = 64


def compressed_format_string(compression: str, encoding: str = 'bgr8') -> str:
    """Return CompressedImage.format as image_transport writes it.

    'bgr8; jpeg compressed bgr8' for colour images, 'mono8; png compressed ' for mono (the
    source encoding, then what the payload holds).
    """
    if compression not in COMPRESSED_FORMATS:
        raise ImageConversionError(
            f'unsupported compression {compression!r}; supported: {", ".join(COMPRESSED_FORMATS)}')
    target = 'bgr8' if _encoding(encoding).channels >= 3 else ''
    return f'{encoding}; {compression} compressed {target}'


def array_to_compressed_msg(image: np.ndarray, compression: str = 'jpeg', quality: int = 80,
                            msg=None, header=None):
    """Fill `msg` (a new sensor_msgs/CompressedImage when None) with `image` as JPEG or PNG.

    `image` is BGR (HxWx3 uint8) or mono8 (HxW uint8).  `quality` is the JPEG quality (1-100);
    PNG ignores it (lossless, default zlib level).  Returns the message.
    """
    encoding = 'mono8' if isinstance(image, np.ndarray) and image.ndim == 2 else 'bgr8'
    _check_array(image, encoding)
    format_string = compressed_format_string(compression, encoding)
    if compression == 'jpeg':
        if not 1 <= int(quality) <= 100:
            raise ImageConversionError(f'JPEG quality must be in [1, 100], got {quality}')
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    else:
        params = []
    ok, encoded = cv2.imencode('.jpg' if compression == 'jpeg' else '.png', image, params)
    if not ok:
        raise ImageConversionError(f'OpenCV could not encode a {image.shape} image as '
                                   f'{compression}')
    if msg is None:
        try:
            from sensor_msgs.msg import CompressedImage
        except ImportError as error:
            raise ImageConversionError(
                'sensor_msgs is not importable: pass a message object as msg') from error
        msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = format_string
    data = array.array('B')
    data.frombytes(encoded.data)
    msg.data = data
    return msg


def _payload_kind(data: np.ndarray) -> str:
    """Return 'jpeg' or 'png' from the payload's signature; ImageConversionError if neither."""
    head = data[:8].tobytes()
    if head.startswith(_JPEG_START):
        kind, end_marker = 'jpeg', _JPEG_END
    elif head.startswith(_PNG_START):
        kind, end_marker = 'png', _PNG_END
    else:
        raise ImageConversionError(
            f'payload is neither JPEG nor PNG (starts with {head[:4].hex() or "nothing"})')
    # A truncated JPEG still decodes (libjpeg fills the missing rows with grey and only
    # warns): require the end marker, as a complete image always has one.
    tail = data[-(_TRAILER_SLACK + len(end_marker)):].tobytes()
    if end_marker not in tail:
        raise ImageConversionError(
            f'truncated {kind.upper()} payload ({data.size} bytes, no end marker)')
    return kind


def compressed_msg_to_bgr(msg) -> np.ndarray:
    """Decode a CompressedImage (JPEG or PNG, any image_transport format string) to BGR.

    Returns HxWx3 uint8 BGR (mono is expanded, 16-bit PNG reduced to 8 bits).  A corrupt,
    truncated or empty payload, or a format other than JPEG/PNG, raises ImageConversionError.
    """
    format_string = str(getattr(msg, 'format', ''))
    if 'compresseddepth' in format_string.lower().replace(' ', ''):
        raise ImageConversionError(
            f'compressedDepth images are not supported (format {format_string!r})')
    data = _data_buffer(msg.data)
    if data.size == 0:
        raise ImageConversionError(f'compressed image is empty (format {format_string!r})')
    kind = _payload_kind(data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageConversionError(
            f'corrupt {kind.upper()} payload ({data.size} bytes, format {format_string!r})')
    return image


def msg_to_bgr(msg) -> np.ndarray:
    """Return BGR HxWx3 uint8 from a sensor_msgs/Image or sensor_msgs/CompressedImage.

    The detector's one entry point for frames, whatever the transport: raw images are
    converted by `image_msg_to_bgr` (a view for bgr8), compressed ones decoded.
    """
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return compressed_msg_to_bgr(msg)
    return image_msg_to_bgr(msg)


def describe_msg(msg) -> str:
    """Return a short description of an image message for error messages."""
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return f'compressed {msg.format!r}, {len(msg.data)} bytes'
    return f'{msg.width}x{msg.height} {msg.encoding!r}'
