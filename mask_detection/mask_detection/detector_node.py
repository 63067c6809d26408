"""detector_node: faces with / without a mask in sensor_msgs/Image, as ROS messages.

Subscribes ``image`` (remap it; best effort by default, which accepts reliable and best-effort
publishers), or ``image/compressed`` (sensor_msgs/CompressedImage, JPEG or PNG) with
``image_transport:=compressed`` for a camera on another host; keeps only the newest frame and
processes it on a worker thread with `MaskDetectionPipeline`.  Publishes ``detections``
(MaskDetectionArray, the image's header unchanged), ``annotated_image`` and
``annotated_image/compressed`` (each only while someone subscribes), ``visitor_events`` (with
tracking) and ``/diagnostics``.  All the vision lives in pipeline.py and below; this file maps
ROS parameters to `PipelineConfig` and moves messages.
"""
import dataclasses
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from mask_detection import engines, faces
from mask_detection.classifier import ModelFileError
from mask_detection.image_codec import array_to_compressed_msg, array_to_image_msg
from mask_detection.image_codec import describe_msg, ImageConversionError, msg_to_bgr
from mask_detection.node_runner import run_node
from mask_detection.pipeline import DEFAULT_FRAMES_IN_FLIGHT, MaskDetectionPipeline
from mask_detection.pipeline import PipelineConfig
from mask_detection.qos import visitor_events_qos
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray
from mask_detection_msgs.msg import VisitorEvent as VisitorEventMsg

try:
    from mask_detection import tracking
except ImportError:     # tracking is optional: without it no track ids, no visitor events
    tracking = None

DIAGNOSTICS_PERIOD_S = 1.0
# How often the node checks whether images stopped (for VISITOR_LEFT), s.
SILENCE_CHECK_PERIOD_S = 0.5
BAD_FRAME_LOG_PERIOD_S = 5.0
# Falling behind: frames were dropped while the worker was busy this share of the time.
BUSY_WARN_FRACTION = 0.9
# image_transport values: the message type and the suffix of the subscribed topic.
IMAGE_TRANSPORTS = {'raw': (Image, ''), 'compressed': (CompressedImage, '/compressed')}


class ConfigurationError(Exception):
    """The node cannot run with its parameters (missing model, unknown detector, ...)."""


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """A ROS parameter: default, description and (from, to) range, inclusive."""

    name: str
    default: object
    description: str
    low: object = None
    high: object = None
    read_only: bool = False
    constraints: str = ''

    def descriptor(self):
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only,
                                         additional_constraints=self.constraints)
        if self.low is None or isinstance(self.default, bool):
            return descriptor
        if isinstance(self.default, int):
            descriptor.integer_range = [IntegerRange(
                from_value=int(self.low), to_value=int(self.high), step=0)]
        elif isinstance(self.default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return descriptor


# Descriptions and ranges of the PipelineConfig fields, which are the node's parameters of the
# same names (defaults come from PipelineConfig itself; it validates the rest).
PIPELINE_PARAMETERS = {
    'face_detector': ("Face detector: 'centerface' (DNN), 'haar' (OpenCV cascade) or 'auto' "
                      '(CenterFace when its model file is installed, else Haar).', None, None),
    'detection_scale': ('Scale of the frame given to the face detector, in (0, 1] (0.5 = '
                        'half size: faster, misses small faces); 0 = the default scale of the '
                        'detector in use.', 0.0, 1.0),
    'detection_min_side': ('CenterFace below full scale: a frame is not shrunk to a longer '
                           'side under this many pixels (a 240x240 webcam frame stays at full '
                           'resolution), and such a frame is also searched at '
                           'detection_scale for faces close to the camera (both passes: up '
                           'to 1.6x the cost of 640x480 at half size); 0 = no floor.',
                           0, 100000),
    'face_score_threshold': ('CenterFace: minimum face score.', 0.0, 1.0),
    'nms_iou': ('CenterFace: boxes overlapping a better one by more than this IoU are '
                'dropped.', 0.01, 1.0),
    'inference_engine': ("Engine of CenterFace and the classifier: 'onnxruntime' (both), "
                         "'opencv' (CenterFace in OpenCV DNN, the classifier in PyTorch: "
                         "slower) or 'auto' (ONNX Runtime when installed).", None, None),
    'detector_threads': ('ONNX Runtime threads of the face detector of each frame in flight; '
                         '0 = the usable cores divided among frames_in_flight (at least 1).',
                         0, 1024),
    'refine_threshold': ('CenterFace below full scale: candidates scoring at least this (and '
                         'below face_score_threshold) that are smaller than 48 px get a '
                         'full-resolution look around them (small faces); 0 = off.', 0.0, 1.0),
    'haar_scale_factor': ('Haar: step between window sizes (> 1; smaller finds more, slower).',
                          1.001, 10.0),
    'haar_min_neighbors': ('Haar: overlapping raw detections needed to keep a face.', 0, 100),
    'haar_min_size': ('Haar: smallest face side in pixels.', 0, 100000),
    'haar_max_size': ('Haar: largest face side in pixels; 0 = no limit.', 0, 100000),
    'model_path': ('Mask classifier model file (.pt); empty = the shipped model '
                   '(share/mask_detection/models/mask_classifier.pt).', None, None),
    'align_faces': ("Crop each face upright (eyes level) by the face detector's landmarks "
                    'before classifying it, when the head is rolled 3 to 45 degrees, faces the '
                    'camera (eyes at least 0.2 of the face apart) and the face is 32 px or '
                    'more (CenterFace only; Haar boxes have no landmarks).',
                    None, None),
    'device': ("PyTorch device of the classifier: 'cpu', 'cuda' or 'cuda:N'.", None, None),
    'num_threads': ('Classifier CPU threads (ONNX Runtime session; PyTorch: process-wide); '
                    '0 = all cores / the PyTorch default.', 0, 1024),
    'mask_threshold': ('P(mask) at or above which a face is MASK, else NO_MASK.', 0.0, 1.0),
    'unknown_threshold': ('A face whose chosen label has a lower probability than this is '
                          'UNKNOWN.', 0.0, 1.0),
    'min_face_size': ('Faces whose shorter side is below this (pixels) are UNKNOWN.',
                      0, 100000),
}
# Changing one of these loads a new classifier; the other pipeline parameters rebuild only
# the face detector (or nothing: the label thresholds).
CLASSIFIER_PARAMETERS = {'model_path', 'device', 'num_threads', 'inference_engine',
                         'align_faces'}
LABEL_PARAMETERS = {'mask_threshold', 'unknown_threshold', 'min_face_size'}


def _tracker_field_descriptions():
    """Map TrackerConfig field names to the text of its docstring's Attributes section."""
    names = {spec.name for spec in dataclasses.fields(tracking.TrackerConfig)}
    descriptions, current = {}, None
    for line in (tracking.TrackerConfig.__doc__ or '').splitlines():
        stripped = line.strip()
        name, _, text = stripped.partition(':')
        if name in names and text:
            current = name
            descriptions[name] = text.strip()
        elif current and stripped:
            descriptions[current] += ' ' + stripped
        else:
            current = None
    return descriptions


def parameter_specs():
    """Return every parameter detector_node declares, in declaration order."""
    specs = [
        ParameterSpec('qos_reliability', 'best_effort',
                      "Reliability of the image subscription: 'best_effort' (sensor data: "
                      "accepts reliable and best-effort publishers) or 'reliable'.",
                      read_only=True, constraints="'best_effort' or 'reliable'"),
        ParameterSpec('image_transport', 'raw',
                      "'raw': subscribe to image (sensor_msgs/Image); 'compressed': to "
                      'image/compressed (sensor_msgs/CompressedImage, JPEG or PNG), as '
                      'image_transport names it: for a camera on another host.',
                      read_only=True, constraints="'raw' or 'compressed'"),
        ParameterSpec('jpeg_quality', 60, 'JPEG quality (1-100) of annotated_image/compressed '
                      '(encoded only while someone subscribes).', 1, 100),
        ParameterSpec('max_rate_hz', 0.0, 'Process at most this many frames per second; '
                      '0 = as fast as frames arrive (only the newest frame is processed).',
                      0.0, 1000.0),
        ParameterSpec('no_image_timeout', 5.0, 'Seconds without an image after which '
                      '/diagnostics reports ERROR.', 0.1, 3600.0),
        ParameterSpec('frames_in_flight', DEFAULT_FRAMES_IN_FLIGHT,
                      'Frames processed at the same time, each by its own worker and copy of '
                      'the pipeline (1 = one at a time); tracking and publishing stay in '
                      'arrival order. A frame that arrives while another is processed starts '
                      'at once instead of waiting.', 1, 8, read_only=True),
    ]
    defaults = PipelineConfig()
    for spec in dataclasses.fields(PipelineConfig):
        description, low, high = PIPELINE_PARAMETERS.get(
            spec.name, (f'PipelineConfig.{spec.name} (see pipeline.py).', None, None))
        choices = {'face_detector': faces.DETECTOR_NAMES,
                   'inference_engine': engines.ENGINE_NAMES}.get(spec.name)
        constraints = 'one of ' + ', '.join(repr(name) for name in choices) if choices else ''
        specs.append(ParameterSpec(spec.name, getattr(defaults, spec.name), description,
                                   low, high, constraints=constraints))
    if tracking is not None:
        specs.append(ParameterSpec('tracking.enabled', True, 'Track faces across frames: '
                                   'stable track_id, smoothed labels, visitor_events.'))
        descriptions = _tracker_field_descriptions()
        for spec in dataclasses.fields(tracking.TrackerConfig):
            low, high = spec.metadata.get('range', (None, None))
            specs.append(ParameterSpec(
                f'tracking.{spec.name}', spec.default,
                descriptions.get(spec.name, f'TrackerConfig.{spec.name} (see tracking.py).'),
                low, high))
    return specs


def pipeline_config(values):
    """Build the PipelineConfig for parameter ``values`` ({name: value}); ValueError if bad.

    ``detector_threads`` 0 becomes the usable cores divided among ``frames_in_flight``.
    """
    fields = {spec.name: values[spec.name] for spec in dataclasses.fields(PipelineConfig)}
    if not fields['detector_threads']:
        in_flight = values.get('frames_in_flight', 1)
        fields['detector_threads'] = max(1, engines.usable_cores() // in_flight)
    return PipelineConfig(**fields)


def tracker_config(values):
    """Build the TrackerConfig for parameter ``values``; ValueError if bad."""
    return tracking.TrackerConfig(**{
        name.split('.', 1)[1]: value for name, value in values.items()
        if name.startswith('tracking.') and name != 'tracking.enabled'})


def build_pipeline(values, changed=None, current=None):
    """Return a MaskDetectionPipeline for ``values``, reusing ``current``'s parts if unchanged.

    ``changed`` names the parameters that differ from ``current``'s configuration.
    """
    config = pipeline_config(values)
    reuse = {}
    if current is not None and changed is not None:
        if not changed & CLASSIFIER_PARAMETERS:
            reuse['classifier'] = current.classifier
        if changed <= LABEL_PARAMETERS:
            reuse['face_detector'] = current.face_detector
    return MaskDetectionPipeline(config, **reuse)


class LatestFrame:
    """A one-slot mailbox: put() replaces a waiting frame (counted as dropped).

    take() numbers the items it hands out 0, 1, 2, ... in arrival order (``taken``).
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._item = None
        self.dropped = 0
        self.taken = 0

    def put(self, item):
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._condition.notify()

    def take(self, timeout):
        """Return (number, newest item), waiting up to ``timeout`` s; None if there is none."""
        with self._condition:
            if self._item is None:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            if item is None:
                return None
            self.taken += 1
            return self.taken - 1, item


class ThrottledLog:
    """Log each distinct message at most once per ``period`` s, counting the repeats."""

    MAX_MESSAGES = 256

    def __init__(self, log_function, period):
        self._log = log_function
        self._period = period
        self._last = {}       # message -> (time logged, repeats since)

    def __call__(self, message):
        now = time.monotonic()
        last, repeats = self._last.get(message, (None, 0))
        if last is not None and now - last < self._period:
            self._last[message] = (last, repeats + 1)
            return
        suffix = f' ({repeats} more in the last {now - last:.0f} s)' if repeats else ''
        self._log(message + suffix)
        if len(self._last) >= self.MAX_MESSAGES:    # bounded memory for endless variants
            self._last = {text: entry for text, entry in self._last.items()
                          if now - entry[0] < self._period}
        self._last[message] = (now, 0)


@dataclasses.dataclass
class WindowStats:
    """What happened since the last diagnostics message (guarded by the node's lock)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    bad_frames: int = 0
    faces: int = 0
    processing_ms_sum: float = 0.0
    processing_ms_max: float = 0.0
    stage_ms: dict = dataclasses.field(default_factory=dict)


class DetectorCore:
    """Everything detector_node and managed_detector_node share, on a given rclpy node.

    Owns the parameters, the pipeline and tracker, the frame path and the statistics.  The
    two node classes only differ in when they call configure() (parameters validated,
    models loaded, publishers created), activate() (image subscription, worker thread),
    deactivate() (neither: no processing) and cleanup().
    """

    def __init__(self, node):
        self.node = node
        self.specs = {spec.name: spec for spec in parameter_specs()}
        for spec in self.specs.values():
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        self.tracker = None
        # One pipeline per frame in flight (their ONNX Runtime session caches are not shared
        # between threads); empty until configured.
        self.pipelines = []
        node.add_on_set_parameters_callback(self._on_set_parameters)

        self.lock = threading.Lock()
        # The worker and the silence timer both advance the tracker.
        self.tracker_lock = threading.Lock()
        self.last_tracked = None     # (header, stamp s, monotonic s) of the last tracked image
        self.window = WindowStats()
        self.created = self.window_start = time.monotonic()
        self.last_image_time = None
        self.last_frame_id = ''
        self.dropped_total = 0
        self.bad_frames_total = 0
        self.mailbox = LatestFrame()
        self.bad_frame_log = ThrottledLog(node.get_logger().error, BAD_FRAME_LOG_PERIOD_S)
        self.detections_pub = self.annotated_pub = self.events_pub = None
        self.annotated_compressed_pub = None
        self.diagnostics_pub = self.diagnostics_timer = None
        self.subscription = self.silence_timer = None
        self.image_topic = node.resolve_topic_name('image')
        self._stop = threading.Event()
        self._workers = []
        # Frames are taken one worker at a time (max_rate_hz spacing, arrival numbers) and
        # tracked and published in the order taken: self._turn is the next number's turn.
        self._take_lock = threading.Lock()
        self._next_start = 0.0
        self._turn_condition = threading.Condition()
        self._turn = 0

    @property
    def pipeline(self):
        """Return the first of the frames-in-flight pipelines (all share its settings), or None."""
        return self.pipelines[0] if self.pipelines else None

    @property
    def configured(self):
        return bool(self.pipelines)

    @property
    def active(self):
        return self.subscription is not None

    def configure(self):
        """Validate the parameters, load the models, create the publishers.

        ConfigurationError (nothing created) if the parameters are unusable.
        """
        values = self._values()
        reliability = values['qos_reliability']
        if reliability not in ('best_effort', 'reliable'):
            raise ConfigurationError(
                f"qos_reliability must be 'best_effort' or 'reliable', got {reliability!r}")
        transport = values['image_transport']
        if transport not in IMAGE_TRANSPORTS:
            raise ConfigurationError(
                f"image_transport must be 'raw' or 'compressed', got {transport!r}")
        self.pipelines, self.tracker = self._build(values)    # ConfigurationError if bad
        node = self.node
        self.detections_pub = node.create_publisher(MaskDetectionArray, 'detections', 10)
        self.annotated_pub = node.create_publisher(
            Image, 'annotated_image',
            QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.annotated_compressed_pub = node.create_publisher(
            CompressedImage, self.annotated_pub.topic_name + '/compressed',
            QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.events_pub = (node.create_publisher(
            VisitorEventMsg, 'visitor_events', visitor_events_qos())
            if tracking is not None else None)
        self.diagnostics_pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.diagnostics_timer = node.create_timer(DIAGNOSTICS_PERIOD_S,
                                                   self._publish_diagnostics)

    def activate(self):
        """Subscribe to images and start processing them."""
        reliability = self._values()['qos_reliability']
        image_qos = QoSProfile(depth=2, reliability=(
            ReliabilityPolicy.RELIABLE if reliability == 'reliable'
            else ReliabilityPolicy.BEST_EFFORT))
        with self.lock:     # "no image for N s" counts from activation
            self.created = time.monotonic()
        image_type, suffix = IMAGE_TRANSPORTS[self._values()['image_transport']]
        # image_transport's naming: the suffix goes after the resolved (remapped) image topic.
        self.subscription = self.node.create_subscription(
            image_type, self.image_topic + suffix, self._on_image, image_qos)
        self.silence_timer = self.node.create_timer(SILENCE_CHECK_PERIOD_S,
                                                    self._expire_tracks_on_silence)
        self._stop.clear()
        with self._turn_condition:
            self._turn = self.mailbox.taken
        self._workers = [
            threading.Thread(target=self._work, args=(pipeline_index,),
                             name=f'detector-{pipeline_index}', daemon=True)
            for pipeline_index in range(len(self.pipelines))]
        for worker in self._workers:
            worker.start()
        self.node.get_logger().info(
            f'{self._pipeline_summary()}; listening on {self.subscription.topic_name} '
            f'({reliability})')

    def deactivate(self):
        """Unsubscribe and stop the worker: no image reaches the process, nothing runs."""
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None
        if self.silence_timer is not None:
            self.node.destroy_timer(self.silence_timer)
            self.silence_timer = None
        self.stop()
        self.mailbox.take(timeout=0)       # a frame waiting from before is stale

    def cleanup(self):
        """Undo configure(): publishers gone, models released."""
        self.deactivate()
        for publisher in (self.detections_pub, self.annotated_pub, self.annotated_compressed_pub,
                          self.events_pub, self.diagnostics_pub):
            if publisher is not None:
                self.node.destroy_publisher(publisher)
        if self.diagnostics_timer is not None:
            self.node.destroy_timer(self.diagnostics_timer)
        self.detections_pub = self.annotated_pub = self.events_pub = None
        self.annotated_compressed_pub = None
        self.diagnostics_pub = self.diagnostics_timer = None
        with self.tracker_lock:
            self.tracker = None
            self.pipelines = []
            self.last_tracked = None

    # ---- configuration -------------------------------------------------------------------

    def _values(self, overrides=()):
        values = {name: self.node.get_parameter(name).value for name in self.specs}
        values.update({parameter.name: parameter.value for parameter in overrides})
        return values

    def _build(self, values, changed=None):
        """Return (pipelines, tracker or None) for ``values``; ConfigurationError if bad.

        ``changed``: the names of the parameters that changed (None = build everything).
        """
        pipeline_fields = {spec.name for spec in dataclasses.fields(PipelineConfig)}
        try:
            pipelines, tracker = self.pipelines, self.tracker
            if changed is None or changed & pipeline_fields:
                current = pipelines or [None] * values['frames_in_flight']
                pipelines = [build_pipeline(
                    values, None if changed is None else changed & pipeline_fields, pipeline)
                    for pipeline in current]
            if changed is None or any(name.startswith('tracking.') for name in changed):
                tracker = None
                if tracking is not None and values['tracking.enabled']:
                    tracker = tracking.MaskTracker(tracker_config(values))
        except (ModelFileError, faces.FaceDetectorError, ValueError, OSError) as error:
            raise ConfigurationError(str(error)) from error
        return pipelines, tracker

    def _on_set_parameters(self, parameters):
        changed = {p.name for p in parameters if p.name in self.specs}
        if not changed or not self.configured:
            # Unconfigured (managed node): configure() validates and builds everything.
            return SetParametersResult(successful=True)
        try:
            pipelines, self.tracker = self._build(self._values(parameters), changed)
            self.pipelines = pipelines
        except ConfigurationError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.node.get_logger().info(
            'parameters changed: ' + ', '.join(f'{p.name}={p.value!r}' for p in parameters))
        return SetParametersResult(successful=True)

    def _model_in_use(self):
        return str(self.pipeline.classifier.model_path)

    def _pipeline_summary(self):
        values = self._values()
        return (f'face detector {faces.resolve_detector_name(values["face_detector"])} '
                f'({self.pipeline.face_detector.engine}), '
                f'model {self._model_in_use()}, device {values["device"]}, tracking '
                f'{"on" if self.tracker is not None else "off"}')

    # ---- frames --------------------------------------------------------------------------

    def _on_image(self, msg):
        with self.lock:
            self.window.received += 1
            self.last_image_time = time.monotonic()
        self.mailbox.put(msg)

    def _work(self, index):
        """Worker ``index``: take the newest frame, process it with pipeline ``index``."""
        while not self._stop.is_set():
            with self._take_lock:
                max_rate = self.node.get_parameter('max_rate_hz').value
                if max_rate > 0:
                    # Frames arriving during this wait replace each other in the mailbox.
                    self._stop.wait(max(0.0, self._next_start - time.monotonic()))
                taken = self.mailbox.take(timeout=0.2)
                if taken is None:
                    continue
                started = time.monotonic()
                # Read again: a limit set while take() waited must already space this frame
                # from the next one.
                max_rate = self.node.get_parameter('max_rate_hz').value
                self._next_start = started + (1.0 / max_rate if max_rate > 0 else 0.0)
            number, msg = taken
            try:
                self._process(msg, started, number, self.pipelines[index])
            except Exception as error:  # noqa: B902 - one bad frame must not stop the node
                if not rclpy.ok() or self._stop.is_set():
                    return
                with self.lock:
                    self.window.bad_frames += 1
                self.bad_frame_log(f'frame {describe_msg(msg)} from '
                                   f'{msg.header.frame_id!r} failed: {error}')
            finally:
                self._pass_turn(number)

    def _wait_turn(self, number):
        """Wait until the frames taken before frame ``number`` are tracked and published."""
        with self._turn_condition:
            while self._turn < number and not self._stop.is_set():
                self._turn_condition.wait(0.1)

    def _pass_turn(self, number):
        """Hand the turn on from frame ``number`` (after waiting for it; once only)."""
        self._wait_turn(number)
        with self._turn_condition:
            if self._turn == number:
                self._turn = number + 1
                self._turn_condition.notify_all()

    def _process(self, msg, started, number=None, pipeline=None):
        """Process one frame; ``number``: its place in the order (None: no other in flight)."""
        pipeline = self.pipeline if pipeline is None else pipeline
        try:
            bgr = msg_to_bgr(msg)       # a view of msg.data for bgr8; JPEG/PNG decoded
        except ImageConversionError as error:
            with self.lock:
                self.window.bad_frames += 1
            self.bad_frame_log(
                f'bad image on {getattr(self.subscription, "topic_name", self.image_topic)} '
                f'({describe_msg(msg)}, '
                f'frame_id {msg.header.frame_id!r}), skipped: {error}')
            return
        result = pipeline.process(bgr)
        detections, events = result.detections, []
        # Frames in flight end here in the order they were taken: the tracker needs its
        # stamps in order, and subscribers expect them so.
        if number is not None:
            self._wait_turn(number)
            if self._stop.is_set():
                return
        tracker = self.tracker
        if tracker is not None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if not stamp:       # an unstamped image: track on the arrival time instead
                stamp = self.node.get_clock().now().nanoseconds * 1e-9
            appearances = ([tracking.face_histogram(bgr, d) for d in detections]
                           if tracker.uses_appearance else None)
            with self.tracker_lock:
                tracked = tracker.update(detections, stamp, appearances)
                self.last_tracked = (msg.header, stamp, time.monotonic())
            detections, events = tracked.detections, tracked.events

        self.detections_pub.publish(self._detections_msg(msg.header, bgr.shape, detections))
        for event in events:
            self.events_pub.publish(self._event_msg(msg.header, event))
        want_raw = self.annotated_pub.get_subscription_count() > 0
        want_compressed = self.annotated_compressed_pub.get_subscription_count() > 0
        if want_raw or want_compressed:
            annotated = pipeline.annotate(bgr.copy(), detections, result.timings)
            if want_raw:
                self.annotated_pub.publish(
                    array_to_image_msg(annotated, 'bgr8', header=msg.header))
            if want_compressed:
                self.annotated_compressed_pub.publish(array_to_compressed_msg(
                    annotated, 'jpeg', self.node.get_parameter('jpeg_quality').value,
                    msg=CompressedImage(), header=msg.header))

        elapsed_ms = (time.monotonic() - started) * 1000.0
        with self.lock:
            window = self.window
            window.processed += 1
            window.faces += len(detections)
            window.processing_ms_sum += elapsed_ms
            window.processing_ms_max = max(window.processing_ms_max, elapsed_ms)
            for stage, ms in result.timings.items():
                window.stage_ms[stage] = window.stage_ms.get(stage, 0.0) + ms
            self.last_frame_id = msg.header.frame_id

    def _expire_tracks_on_silence(self):
        """Send VISITOR_LEFT when images stop altogether (a stopped or unplugged camera).

        Tracks end on image stamps; without images the tracker is advanced by the time that
        has passed since the last tracked image, so visitors still leave after leave_timeout.
        """
        tracker = self.tracker
        with self.tracker_lock:
            if tracker is None or self.last_tracked is None:
                return
            header, stamp, seen = self.last_tracked
            silence = time.monotonic() - seen
            if silence <= tracker.config.leave_timeout:
                return
            events = tracker.update([], stamp + silence).events
            self.last_tracked = (header, stamp + silence, time.monotonic())
        now = self.node.get_clock().now().to_msg()
        for event in events:
            self.events_pub.publish(self._event_msg(
                Header(stamp=now, frame_id=header.frame_id), event))

    @staticmethod
    def _detections_msg(header, shape, detections):
        msg = MaskDetectionArray(header=header, image_width=shape[1], image_height=shape[0])
        msg.detections = [MaskDetection(
            x=int(d.x), y=int(d.y), width=int(d.width), height=int(d.height), label=int(d.label),
            mask_probability=float(d.mask_probability), confidence=float(d.confidence),
            face_score=float(d.face_score), track_id=int(d.track_id)) for d in detections]
        return msg

    @staticmethod
    def _event_msg(header, event):
        return VisitorEventMsg(
            header=header, track_id=int(event.track_id), event=int(event.event),
            label=int(event.label), confidence=float(event.confidence), x=int(event.x),
            y=int(event.y), width=int(event.width), height=int(event.height))

    # ---- diagnostics ---------------------------------------------------------------------

    def _publish_diagnostics(self):
        now = time.monotonic()
        with self.lock:
            window, self.window = self.window, WindowStats()
            elapsed, self.window_start = now - self.window_start, now
            window.dropped = self.mailbox.dropped - self.dropped_total
            self.dropped_total = self.mailbox.dropped
            self.bad_frames_total += window.bad_frames
            last_image, frame_id = self.last_image_time, self.last_frame_id
        status = self.diagnostic_status(window, elapsed, now, last_image)
        status.hardware_id = frame_id
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    def diagnostic_status(self, window, elapsed, now, last_image):
        """Summarise one window of statistics as a DiagnosticStatus."""
        elapsed = max(elapsed, 1e-6)
        processed = max(window.processed, 1)
        mean_ms = window.processing_ms_sum / processed
        input_rate = window.received / elapsed
        # The share of the time the workers were busy, all frames in flight together.
        busy = window.processing_ms_sum / 1000.0 / elapsed / max(len(self.pipelines), 1)
        timeout = self.node.get_parameter('no_image_timeout').value
        silent_for = now - (last_image if last_image is not None else self.created)
        topic = self.image_topic
        if not self.active:
            level = DiagnosticStatus.OK
            text = f'inactive: not subscribed to {topic}, not processing'
        elif silent_for >= timeout:
            level = DiagnosticStatus.ERROR
            text = f'no image on {topic} for {silent_for:.0f} s'
        elif window.dropped and busy >= BUSY_WARN_FRACTION:
            level = DiagnosticStatus.WARN
            text = (f'falling behind: {window.dropped} of {window.received} frames dropped, '
                    f'{mean_ms:.0f} ms per frame')
        elif window.bad_frames:
            level = DiagnosticStatus.WARN
            text = f'{window.bad_frames} bad frame(s) rejected'
        else:
            level = DiagnosticStatus.OK
            text = f'processing {window.processed / elapsed:.1f} Hz of {input_rate:.1f} Hz input'
        values = self._values()
        items = {
            'input_rate_hz': f'{input_rate:.2f}',
            'processed_rate_hz': f'{window.processed / elapsed:.2f}',
            'processing_ms_mean': f'{mean_ms:.2f}',
            'processing_ms_max': f'{window.processing_ms_max:.2f}',
            'dropped_frames': str(window.dropped),
            'dropped_frames_total': str(self.dropped_total),
            'bad_frames_total': str(self.bad_frames_total),
            'faces_per_frame': f'{window.faces / processed:.2f}',
            'face_detector': faces.resolve_detector_name(values['face_detector']),
            'inference_engine': self.pipeline.face_detector.engine,
            'frames_in_flight': str(len(self.pipelines)),
            'model': self._model_in_use(),
            'device': str(values['device']),
            'tracking': 'on' if self.tracker is not None else 'off',
            'max_rate_hz': f'{values["max_rate_hz"]:g}',
        }
        for stage, total in sorted(window.stage_ms.items()):
            items[f'{stage}_ms_mean'] = f'{total / processed:.2f}'
        return DiagnosticStatus(
            level=level, name=f'{self.node.get_name()}: mask detector', message=text,
            values=[KeyValue(key=key, value=value) for key, value in items.items()])

    def stop(self, timeout=5.0):
        """Stop the worker threads (each finishes the frame in hand)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._workers = []


class DetectorNode(Node):
    """detector_node: configured and processing from the start (DetectorCore does the work)."""

    def __init__(self, **kwargs):
        super().__init__('detector_node', **kwargs)
        self.core = DetectorCore(self)
        self.core.configure()       # ConfigurationError: main() exits with one clear message
        self.core.activate()

    def stop(self, timeout=5.0):
        """Stop the worker thread (it finishes the frame in hand)."""
        self.core.stop(timeout)


def main(args=None):
    """Run detector_node until SIGINT/SIGTERM; exit code 1 for an unusable configuration."""
    return run_node('detector_node', DetectorNode, (ConfigurationError, ParameterException),
                    close=lambda node: node.stop(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
