"""viewer_node: the live view in a browser (annotated stream, visitors, events, rates).

Subscribes ``annotated_image`` (only while a browser watches the stream: detector_node draws
only for subscribers), ``detections``, ``visitor_events`` and ``/diagnostics`` (all
remappable) and serves them over HTTP with viewer.py: ``/`` (the page), ``/stream.mjpg``,
``/snapshot.jpg`` and ``/state.json``.  Listens on 127.0.0.1 unless ``host`` says otherwise:
the stream shows people's faces.
"""
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from mask_detection.image_codec import image_msg_to_bgr, ImageConversionError
from mask_detection.node_runner import run_node
from mask_detection.qos import visitor_events_qos
from mask_detection.viewer import (FrameFanout, ViewerConfig, ViewerError, ViewerServer,
                                   ViewerState)
from mask_detection_msgs.msg import MaskDetectionArray, VisitorEvent

# How often the node checks whether a browser watches (to subscribe annotated_image or not).
WATCH_CHECK_PERIOD_S = 0.25
BAD_IMAGE_LOG_PERIOD_S = 5.0
# Parameter name -> (description, (from, to), read-only).  Defaults come from ViewerConfig.
PARAMETERS = {
    'host': ('Address to listen on. 127.0.0.1 (default) = this machine only; 0.0.0.0 = every '
             'interface (other machines can see the stream, which shows faces).', None, True),
    'port': ('TCP port of the web page; 0 = any free port (the URL is logged).', (0, 65535),
             True),
    'max_fps': ('Most frames per second sent to browsers (JPEG-encoded once for all of them).',
                (0.1, 120.0), False),
    'jpeg_quality': ('JPEG quality of the stream, 1-100.', (1, 100), False),
    'max_clients': ('Most simultaneous stream viewers; more get HTTP 503.', (1, 1000), True),
    'client_timeout': ('Seconds a browser may take to accept one frame (or to send its '
                       'request) before it is disconnected; a stalled viewer never slows the '
                       'others.', (0.5, 3600.0), True),
    'max_events': ('Visitor events listed on the page (newest first).', (1, 1000), True),
}


def _descriptor(name, default):
    description, value_range, read_only = PARAMETERS[name]
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if value_range is not None and isinstance(default, int):
        descriptor.integer_range = [IntegerRange(from_value=value_range[0],
                                                 to_value=value_range[1], step=0)]
    elif value_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(value_range[0]), to_value=float(value_range[1]), step=0.0)]
    return descriptor


def _face(detection):
    return {name: getattr(detection, name) for name in (
        'x', 'y', 'width', 'height', 'label', 'mask_probability', 'confidence', 'face_score',
        'track_id')}


def _level(value):
    # DiagnosticStatus.level is a ROS 'byte': bytes of length 1 in Python.
    return value[0] if isinstance(value, (bytes, bytearray)) else int(value)


def _stamp(header):
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class ViewerNode(Node):
    """ROS adapter: topics -> ViewerState / FrameFanout; ViewerServer serves them."""

    def __init__(self, **kwargs):
        super().__init__('viewer_node', **kwargs)
        defaults = ViewerConfig()
        for name in PARAMETERS:
            default = getattr(defaults, name)
            self.declare_parameter(name, default, _descriptor(name, default))
        self.config = ViewerConfig(**{name: self.get_parameter(name).value
                                      for name in PARAMETERS})      # ValueError if bad
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.state = ViewerState(self.config.max_events, clock=self._now)
        self.fanout = FrameFanout(self.config)
        self.server = ViewerServer(self.config, self.state, self.fanout)
        self.image_subscription = None
        self.create_subscription(MaskDetectionArray, 'detections', self._on_detections,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(VisitorEvent, 'visitor_events', self._on_event,
                                 visitor_events_qos())
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.create_timer(WATCH_CHECK_PERIOD_S, self._follow_watchers)
        try:
            self.server.start()
        except ViewerError:
            self.fanout.close()
            raise
        self.get_logger().info(
            f'live view at {self.server.url} (stream {self.server.url}stream.mjpg, state '
            f'{self.server.url}state.json); annotated images from '
            f'{self.resolve_topic_name("annotated_image")} while someone watches')
        if self.config.exposed:
            self.get_logger().warning(
                f'listening on {self.config.host}: other machines can open the live view, '
                'which shows the faces in front of the camera')

    def _now(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_set_parameters(self, parameters):
        values = {name: self.get_parameter(name).value for name in PARAMETERS}
        values.update({p.name: p.value for p in parameters if p.name in PARAMETERS})
        try:
            config = ViewerConfig(**values)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if hasattr(self, 'fanout'):
            self.fanout.set_quality(config.jpeg_quality, config.max_fps)
        return SetParametersResult(successful=True)

    def _follow_watchers(self):
        """Subscribe annotated_image while a stream client is connected, else not."""
        watched = self.fanout.stats()['clients'] > 0
        if watched and self.image_subscription is None:
            # Best effort (sensor data): takes reliable publishers too; depth 1 = newest only.
            self.image_subscription = self.create_subscription(
                Image, 'annotated_image', self._on_image,
                QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        elif not watched and self.image_subscription is not None:
            self.destroy_subscription(self.image_subscription)
            self.image_subscription = None

    def _on_image(self, msg):
        try:
            bgr = image_msg_to_bgr(msg)     # a view of msg.data (bgr8); kept alive by it
        except ImageConversionError as error:
            self.state.on_bad_image()
            self.get_logger().error(
                f'bad image on annotated_image ({msg.width}x{msg.height} {msg.encoding!r}), '
                f'skipped: {error}', throttle_duration_sec=BAD_IMAGE_LOG_PERIOD_S)
            return
        self.state.on_image(_stamp(msg.header), msg.width, msg.height)
        self.fanout.offer(bgr)

    def _on_detections(self, msg):
        self.state.on_detections(_stamp(msg.header), [_face(d) for d in msg.detections])

    def _on_event(self, msg):
        event = {name: getattr(msg, name) for name in (
            'track_id', 'event', 'label', 'confidence', 'x', 'y', 'width', 'height')}
        self.state.on_event(_stamp(msg.header), event)

    def _on_diagnostics(self, msg):
        self.state.on_diagnostics([{
            'name': status.name, 'level': _level(status.level),
            'message': status.message, 'hardware_id': status.hardware_id,
            'values': {item.key: item.value for item in status.values}}
            for status in msg.status])

    def close(self):
        self.server.close()


def main(args=None):
    """Run viewer_node until SIGINT/SIGTERM; exit code 1 for an unusable configuration."""
    return run_node('viewer_node', ViewerNode, (ValueError, ViewerError, ParameterException),
                    close=lambda node: node.close(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
