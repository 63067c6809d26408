"""camera_node: publish frames of a camera, video file or stream as sensor_msgs/Image.

Opens ``source`` with OpenCV ``VideoCapture`` and publishes ``image_raw`` (bgr8, stamped at
capture, reliable QoS as REP-2003 allows for sensor drivers) and, only while someone subscribes
to it, ``image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG, the same header) as
image_transport's "compressed" transport does: what a detector on another host subscribes to.
A camera that is missing or unplugged is retried with exponential backoff; a file that ends is
rewound (``loop``) or ends the node with exit code 0; a file that does not exist ends it at
once with one error and exit code 1.
"""
import array
from dataclasses import dataclass
import os
import threading
import time

import cv2
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from mask_detection.image_codec import array_to_compressed_msg
from mask_detection.node_runner import run_node

# Backoff between reconnection attempts grows up to this many reconnect_interval's.
MAX_BACKOFF_FACTOR = 16
RATE_LOG_PERIOD_S = 5.0
PUBLISH_QUEUE_DEPTH = 5
# A source with one of these endings names a video file, even without a directory part.
VIDEO_EXTENSIONS = ('.avi', '.mp4', '.mkv', '.mov', '.webm', '.m4v', '.mpg', '.mpeg',
                    '.wmv', '.flv', '.ts', '.mjpeg', '.mjpg')


@dataclass(frozen=True)
class CaptureSource:
    """A parsed ``source`` parameter: what to hand to ``cv2.VideoCapture`` and how."""

    target: object      # int camera index or a string (path, URL, pipeline)
    api: int            # cv2.CAP_* backend preference
    is_file: bool       # a regular file: paced by its own frame rate, may loop or end
    is_camera: bool     # a local device: reconnect when it disappears

    @classmethod
    def parse(cls, source):
        """Interpret '0' / '2' (index), /dev/videoN, a file path, a URL or a GStreamer pipeline."""
        text = source.strip()
        if not text:
            raise ValueError('source is empty: give a camera index, /dev/videoN, a file, '
                             'a URL or a GStreamer pipeline')
        if text.isdigit():
            return cls(int(text), cv2.CAP_ANY, is_file=False, is_camera=True)
        if text.startswith('/dev/'):
            return cls(text, cv2.CAP_ANY, is_file=False, is_camera=True)
        if '!' in text:
            return cls(text, cv2.CAP_GSTREAMER, is_file=False, is_camera=False)
        if _names_missing_file(text):
            # A file that does not exist will not appear by retrying (a device or a stream may).
            raise ValueError(f"no such video file '{text}'")
        return cls(text, cv2.CAP_ANY, is_file=os.path.isfile(text), is_camera=False)


def _names_missing_file(text):
    """Return whether ``text`` names a missing file (not a URL nor an image-sequence pattern).

    OpenCV reads 'frames/img_%04d.png' as an image sequence, so patterns with % are left alone.
    """
    if '://' in text or '%' in text or os.path.exists(text):
        return False
    return '/' in text or text.lower().endswith(VIDEO_EXTENSIONS)


def _descriptor(description, *, int_range=None, float_range=None, read_only=False,
                dynamic_typing=False):
    """Build a ParameterDescriptor; ranges are (from, to) inclusive."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     dynamic_typing=dynamic_typing)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0],
                                                 to_value=int_range[1], step=0)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    return descriptor


class CameraNode(Node):
    """Capture thread + publisher; the executor only serves parameters."""

    def __init__(self, **kwargs):
        super().__init__('camera_node', **kwargs)
        self.declare_parameter('source', '0', _descriptor(
            "What to open: a camera index ('0'), a device (/dev/video0), a video file, a "
            'stream URL (rtsp://...) or a GStreamer pipeline (contains !). An integer '
            'override (source:=0) is accepted too.', read_only=True, dynamic_typing=True))
        self.declare_parameter('width', 0, _descriptor(
            'Published image width in pixels; 0 = the source size. Cameras are asked for it, '
            'frames of another size are resized.', int_range=(0, 16384), read_only=True))
        self.declare_parameter('height', 0, _descriptor(
            'Published image height in pixels; 0 = the source size.', int_range=(0, 16384),
            read_only=True))
        self.declare_parameter('fps', 0.0, _descriptor(
            'Publish rate in Hz; 0 = the rate of the source (a file plays at its own rate).',
            float_range=(0.0, 1000.0)))
        self.declare_parameter('frame_id', 'camera', _descriptor(
            'header.frame_id of the published images (the camera optical frame).'))
        self.declare_parameter('loop', False, _descriptor(
            'Files only: rewind at the end instead of shutting the node down (exit code 0).'))
        self.declare_parameter('wait_for_subscribers', 0, _descriptor(
            'Files only: start playing once this many subscriptions have matched image_raw '
            'and image_raw/compressed together, so that no frame is lost to DDS discovery; '
            '0 = start at once.',
            int_range=(0, 1000), read_only=True))
        self.declare_parameter('jpeg_quality', 60, _descriptor(
            'JPEG quality (1-100) of image_raw/compressed, which is encoded only while someone '
            'subscribes to it; lower = fewer bytes on the network, more artefacts.',
            int_range=(1, 100)))
        self.declare_parameter('reconnect_interval', 1.0, _descriptor(
            'Seconds before the first retry when the source cannot be opened or is lost; '
            f'doubles per failed attempt up to {MAX_BACKOFF_FACTOR} times this.',
            float_range=(0.01, 3600.0)))
        self.add_on_set_parameters_callback(self._validate_parameters)
        start_check = self._validate_parameters([self.get_parameter('frame_id')])
        if not start_check.successful:
            raise ValueError(start_check.reason)

        self.source = CaptureSource.parse(str(self.get_parameter('source').value))
        self.publisher = self.create_publisher(
            Image, 'image_raw',
            QoSProfile(depth=PUBLISH_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE))
        # image_transport's naming: the transport's suffix after the resolved raw topic.
        self.compressed_publisher = self.create_publisher(
            CompressedImage, self.publisher.topic_name + '/compressed',
            QoSProfile(depth=PUBLISH_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE))
        self.compressed_sent = self.compressed_bytes = 0    # since the last rate log
        self.finished = threading.Event()    # the node should end (file over, loop off)
        self.exit_code = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='capture', daemon=True)
        self._thread.start()

    def _validate_parameters(self, parameters):
        for parameter in parameters:
            if parameter.name == 'frame_id' and not str(parameter.value).strip():
                return SetParametersResult(successful=False, reason='frame_id must not be empty')
        return SetParametersResult(successful=True)

    def stop(self, timeout=2.0):
        """Stop the capture thread (it may be blocked inside a camera read)."""
        self._stop.set()
        self._thread.join(timeout)

    # ---- capture thread ------------------------------------------------------------------

    def _run(self):
        try:
            self._capture_loop()
        except Exception as error:  # noqa: B902 - keep the process informative, not silent
            if rclpy.ok() and not self._stop.is_set():
                self.get_logger().fatal(f'capture thread failed: {error!r}')
                self.exit_code = 1
        finally:
            self.finished.set()

    def _param(self, name):
        return self.get_parameter(name).value

    def _open(self):
        """Open the source, retrying with exponential backoff; return None when stopping."""
        delay = self._param('reconnect_interval')
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            capture = cv2.VideoCapture(self.source.target, self.source.api)
            if capture.isOpened():
                self._configure(capture)
                return capture
            capture.release()
            if self.source.is_file:
                # An existing file that OpenCV cannot decode will not get better by waiting.
                raise RuntimeError(f"cannot decode video file '{self.source.target}' "
                                   '(not a video, or a codec this OpenCV build lacks)')
            self.get_logger().error(
                f"cannot open source '{self.source.target}' (attempt {attempt}): no such "
                f'camera or stream, or it is busy; retrying in {delay:.1f} s')
            self._stop.wait(delay)
            delay = min(delay * 2, self._param('reconnect_interval') * MAX_BACKOFF_FACTOR)
        return None

    def _configure(self, capture):
        width, height, fps = self._param('width'), self._param('height'), self._param('fps')
        if not self.source.is_file:
            if width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                capture.set(cv2.CAP_PROP_FPS, fps)
        self.get_logger().info(
            f"opened '{self.source.target}': "
            f'{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x'
            f'{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))} at '
            f'{capture.get(cv2.CAP_PROP_FPS):.1f} fps (source), publishing on '
            f'{self.publisher.topic_name}')

    def _period(self, capture):
        """Seconds between published frames; 0 = as fast as the source delivers."""
        fps = self._param('fps')
        if not fps and self.source.is_file:
            fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        return 1.0 / fps if fps else 0.0

    def _wait_for_subscribers(self):
        wanted = self._param('wait_for_subscribers')
        if not wanted or not self.source.is_file:
            return
        self.get_logger().info(
            f'waiting for {wanted} subscriber(s) on {self.publisher.topic_name} before playing')
        while not self._stop.is_set() and self._subscriber_count() < wanted:
            self._stop.wait(0.02)

    def _subscriber_count(self):
        return (self.publisher.get_subscription_count()
                + self.compressed_publisher.get_subscription_count())

    def _capture_loop(self):
        self._wait_for_subscribers()
        capture = self._open()
        published, window_start, resize_warned = 0, time.monotonic(), False
        next_due = time.monotonic()
        frames_in_file = 0
        while capture is not None and not self._stop.is_set():
            period = self._period(capture)
            if self.source.is_file:
                # Files deliver instantly: sleep to play at the requested rate.
                self._stop.wait(max(0.0, next_due - time.monotonic()))
            ok = capture.grab()
            stamp = self.get_clock().now()     # capture time: right after the grab
            now = time.monotonic()
            if ok and not self.source.is_file and period and now < next_due:
                continue                        # live source faster than fps: skip, no decode
            frame = capture.retrieve()[1] if ok else None
            if frame is None or frame.size == 0:
                capture = self._handle_read_failure(capture, frames_in_file)
                frames_in_file = 0
                next_due = time.monotonic()
                continue
            frames_in_file += 1
            next_due = max(next_due + period, now) if period else now
            frame, resize_warned = self._fit_size(frame, resize_warned)
            self._publish(frame, stamp)
            published += 1
            if now - window_start >= RATE_LOG_PERIOD_S:
                compressed = ''
                if self.compressed_sent:
                    compressed = (f', {self.compressed_sent} compressed (JPEG, '
                                  f'{self.compressed_bytes / self.compressed_sent / 1e3:.1f} '
                                  'kB mean)')
                self.get_logger().info(
                    f'publishing {frame.shape[1]}x{frame.shape[0]} at '
                    f'{published / (now - window_start):.1f} Hz{compressed}')
                published, window_start = 0, now
                self.compressed_sent = self.compressed_bytes = 0
        if capture is not None:
            capture.release()

    def _handle_read_failure(self, capture, frames_in_file):
        """Return the capture to continue with, or None to end the loop."""
        if self.source.is_file:
            if frames_in_file == 0:
                raise RuntimeError(f"video file '{self.source.target}' has no readable frame")
            if self._param('loop'):
                capture.release()             # reopening rewinds any container / codec
                return self._open()
            self.get_logger().info(
                f"end of video file '{self.source.target}' ({frames_in_file} frames) and "
                'loop is false: shutting down')
            capture.release()
            return None
        self.get_logger().error(
            f"lost source '{self.source.target}' (unplugged or stream ended); reconnecting")
        capture.release()
        self._stop.wait(self._param('reconnect_interval'))
        return self._open()

    def _fit_size(self, frame, resize_warned):
        width = self._param('width') or frame.shape[1]
        height = self._param('height') or frame.shape[0]
        if (width, height) == (frame.shape[1], frame.shape[0]):
            return frame, resize_warned
        if not resize_warned:
            self.get_logger().warning(
                f'source delivers {frame.shape[1]}x{frame.shape[0]}, resizing to '
                f'{width}x{height}')
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), True

    def _publish(self, frame, stamp):
        msg = Image()
        msg.header.stamp = stamp.to_msg()
        msg.header.frame_id = self._param('frame_id')
        msg.height, msg.width = frame.shape[:2]
        msg.encoding = 'bgr8'
        msg.step = frame.shape[1] * 3
        data = array.array('B')
        data.frombytes(frame if frame.flags.c_contiguous else frame.tobytes())
        msg.data = data      # array.array: one memcpy (an ndarray costs tens of ms)
        self.publisher.publish(msg)
        if self.compressed_publisher.get_subscription_count() > 0:
            compressed = array_to_compressed_msg(frame, 'jpeg', self._param('jpeg_quality'),
                                                 msg=CompressedImage(), header=msg.header)
            self.compressed_publisher.publish(compressed)
            self.compressed_sent += 1
            self.compressed_bytes += len(compressed.data)


def main(args=None):
    """Run camera_node until SIGINT/SIGTERM, or until a file ends with loop false."""
    return run_node('camera_node', CameraNode, (ValueError, ParameterException),
                    finished=lambda node: node.finished.is_set(),
                    close=lambda node: node.stop(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
