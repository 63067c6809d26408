"""demo_recorder: record what detector_node publishes, for the demo and for inspection.

Subscribes ``detections`` (MaskDetectionArray), ``annotated_image`` (Image), ``visitor_events``
(VisitorEvent), ``greeting`` (std_msgs/String, from greeter_node) and ``/diagnostics``, and
writes to ``output_dir``:

- ``detections.jsonl``: one line per MaskDetectionArray (header, image size, every field of every
  detection) plus the receive time and the latency (receive time - header stamp).
- ``annotated.mp4``: the annotated images (mp4v), ``summary.png``: a contact sheet of them.
- ``events.jsonl``: the visitor events; ``greetings.jsonl``: the greetings (receive time, text);
  ``summary.json``: counts, latency and rate.
- ``camera_frames.jsonl`` (parameter ``camera_frame_digests``): the stamp and SHA-1 of every
  ``image_raw`` frame received, so that the frames of a known video can be matched exactly to
  the detection arrays (stamps drift from frame index / fps when a loaded camera plays late).

Ends by itself ``idle_timeout`` seconds after the last message (0 = never) or on SIGTERM/SIGINT,
writing every file before it exits.
"""
from dataclasses import dataclass, field
import hashlib
import json
from pathlib import Path
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from mask_detection.image_codec import image_msg_to_array
from mask_detection.node_runner import run_node
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray, VisitorEvent

LABEL_NAMES = {MaskDetection.MASK: 'mask', MaskDetection.NO_MASK: 'no_mask',
               MaskDetection.UNKNOWN: 'unknown'}
EVENT_NAMES = {VisitorEvent.VISITOR_APPEARED: 'appeared',
               VisitorEvent.MASK_STATE_CHANGED: 'mask_state_changed',
               VisitorEvent.VISITOR_LEFT: 'left'}
THUMBNAIL_WIDTH = 320
# annotated.mp4 gets the rate of the first this many annotated images (video_fps 0).
FPS_ESTIMATE_FRAMES = 16
DEFAULT_VIDEO_FPS = 15.0
SHEET_COLUMNS = 4
# Height of the caption strip above each contact-sheet tile, px.
CAPTION_HEIGHT = 18


def stamp_seconds(stamp):
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def detection_array_record(msg, received_s):
    """Return the JSON-ready record of one MaskDetectionArray received at ``received_s``."""
    stamp = stamp_seconds(msg.header.stamp)
    return {
        'stamp': {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec},
        'frame_id': msg.header.frame_id,
        'image_width': msg.image_width,
        'image_height': msg.image_height,
        'received': round(received_s, 6),
        'latency_ms': round((received_s - stamp) * 1000.0, 3),
        'detections': [{
            'x': d.x, 'y': d.y, 'width': d.width, 'height': d.height,
            'label': d.label, 'label_name': LABEL_NAMES.get(d.label, f'label {d.label}'),
            'mask_probability': round(float(d.mask_probability), 5),
            'confidence': round(float(d.confidence), 5),
            'face_score': round(float(d.face_score), 5),
            'track_id': d.track_id,
        } for d in msg.detections],
    }


@dataclass
class RunStatistics:
    """What the recorder has seen so far."""

    arrays: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    labels: dict = field(default_factory=lambda: {name: 0 for name in LABEL_NAMES.values()})
    latencies_ms: list = field(default_factory=list)
    first_received: float = None
    last_received: float = None
    annotated_frames: int = 0
    events: int = 0
    greetings: int = 0

    def add(self, record):
        self.arrays += 1
        self.faces += len(record['detections'])
        self.frames_with_faces += bool(record['detections'])
        for detection in record['detections']:
            name = detection['label_name']
            self.labels[name] = self.labels.get(name, 0) + 1
        self.latencies_ms.append(record['latency_ms'])
        if self.first_received is None:
            self.first_received = record['received']
        self.last_received = record['received']

    def summary(self):
        """Return the counts, latency (mean, p50, p95, max in ms) and rate as a dict."""
        latencies = np.asarray(self.latencies_ms, np.float64)
        span = (self.last_received - self.first_received) if self.arrays > 1 else 0.0
        return {
            'frames': self.arrays,
            'frames_with_faces': self.frames_with_faces,
            'faces': self.faces,
            'labels': dict(self.labels),
            'latency_ms': {
                'mean': round(float(latencies.mean()), 2) if latencies.size else None,
                'p50': round(float(np.percentile(latencies, 50)), 2) if latencies.size else None,
                'p95': round(float(np.percentile(latencies, 95)), 2) if latencies.size else None,
                'max': round(float(latencies.max()), 2) if latencies.size else None,
            },
            'fps': round((self.arrays - 1) / span, 2) if span > 0 else None,
            'annotated_frames': self.annotated_frames,
            'events': self.events,
            'greetings': self.greetings,
        }


class ContactSheet:
    """Keep evenly spaced thumbnails of a stream of unknown length in bounded memory.

    Keeps every ``stride``-th frame; when more than twice the wanted number are kept, drops
    every other one and doubles the stride.
    """

    def __init__(self, tiles=12, width=THUMBNAIL_WIDTH):
        self.tiles = tiles
        self.width = width
        self.stride = 1
        self.kept = []   # (index, caption, thumbnail)
        self.seen = 0

    def add(self, bgr, caption):
        index = self.seen
        self.seen += 1
        if index % self.stride:
            return
        scale = self.width / bgr.shape[1]
        thumbnail = cv2.resize(bgr, (self.width, max(1, int(round(bgr.shape[0] * scale)))),
                               interpolation=cv2.INTER_AREA)
        self.kept.append((index, caption, thumbnail))
        if len(self.kept) > 2 * self.tiles:
            self.kept = self.kept[::2]
            self.stride *= 2

    def render(self):
        """Return the contact sheet as a BGR image, or None when no frame was added."""
        if not self.kept:
            return None
        picks = np.linspace(0, len(self.kept) - 1, min(self.tiles, len(self.kept)))
        chosen = [self.kept[int(round(i))] for i in picks]
        height = max(t.shape[0] for _, _, t in chosen)
        tiles = []
        for _, caption, thumbnail in chosen:
            # The caption gets its own strip above the frame: drawn over the frame, it would
            # hide the label tags of faces near the top edge.
            tile = np.zeros((CAPTION_HEIGHT + height, self.width, 3), np.uint8)
            tile[CAPTION_HEIGHT:CAPTION_HEIGHT + thumbnail.shape[0]] = thumbnail
            cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        columns = min(SHEET_COLUMNS, len(tiles))
        while len(tiles) % columns:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
        return np.vstack(rows)


def _descriptor(description, float_range=None, int_range=None):
    descriptor = ParameterDescriptor(description=description, read_only=True)
    if float_range:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    if int_range:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                                 step=0)]
    return descriptor


class DemoRecorder(Node):
    """Write detections, annotated video, events and a summary to ``output_dir``."""

    def __init__(self, **kwargs):
        super().__init__('demo_recorder', **kwargs)
        self.declare_parameter('output_dir', 'demo_output', _descriptor(
            'Folder for detections.jsonl, events.jsonl, annotated.mp4, summary.png and '
            'summary.json (created; files there are overwritten).'))
        self.declare_parameter('video_fps', 0.0, _descriptor(
            'Frame rate written into annotated.mp4; 0 = the rate at which annotated images '
            'arrive, measured on the first ones (plays back in real time).', (0.0, 1000.0)))
        self.declare_parameter('idle_timeout', 0.0, _descriptor(
            'Exit this many seconds after the last message received; 0 = run until '
            'SIGTERM/SIGINT. The clock starts with the first message.', (0.0, 3600.0)))
        self.declare_parameter('sheet_tiles', 12, _descriptor(
            'Number of annotated frames on the contact sheet summary.png.', int_range=(1, 100)))
        self.declare_parameter('camera_frame_digests', False, _descriptor(
            'Also subscribe image_raw and write camera_frames.jsonl: the stamp and SHA-1 of '
            'the pixel data of every camera frame received (to match the frames of a known '
            'video to the detection arrays).'))
        self.output_dir = Path(self.get_parameter('output_dir').value)
        self.video_fps = float(self.get_parameter('video_fps').value)
        self.idle_timeout = float(self.get_parameter('idle_timeout').value)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name in ('detections.jsonl', 'events.jsonl', 'greetings.jsonl', 'annotated.mp4',
                     'summary.png', 'summary.json', 'camera_frames.jsonl'):
            (self.output_dir / name).unlink(missing_ok=True)
        self.detections_file = open(self.output_dir / 'detections.jsonl', 'w')
        self.events_file = open(self.output_dir / 'events.jsonl', 'w')
        self.greetings_file = open(self.output_dir / 'greetings.jsonl', 'w')
        self.stats = RunStatistics()
        self.sheet = ContactSheet(int(self.get_parameter('sheet_tiles').value))
        self.video = None
        self.video_size = None
        self.pending = []   # (stamp, frame) held until the frame rate is known
        self.first_image_stamp = None
        self.detector_diagnostics = {}
        self.last_message = None
        self.finished = False
        self.closed = False

        # Every array matters for the record: reliable, with room for bursts.
        self.create_subscription(
            MaskDetectionArray, 'detections', self._on_detections,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(
            VisitorEvent, 'visitor_events', self._on_event,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(
            String, 'greeting', self._on_greeting,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        # Best effort matches both reliable and best-effort image publishers.
        image_qos = QoSProfile(depth=30, reliability=qos_profile_sensor_data.reliability)
        self.create_subscription(Image, 'annotated_image', self._on_annotated, image_qos)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.camera_frames_file = None
        if self.get_parameter('camera_frame_digests').value:
            self.camera_frames_file = open(self.output_dir / 'camera_frames.jsonl', 'w')
            self.create_subscription(Image, 'image_raw', self._on_camera_frame, image_qos)
        if self.idle_timeout > 0:
            self.create_timer(min(0.5, self.idle_timeout / 2), self._check_idle)
        self.get_logger().info(f'recording to {self.output_dir.resolve()}')

    def _touch(self):
        self.last_message = time.monotonic()

    def _on_detections(self, msg):
        self._touch()
        record = detection_array_record(msg, self.get_clock().now().nanoseconds * 1e-9)
        self.detections_file.write(json.dumps(record, separators=(',', ':')) + '\n')
        self.stats.add(record)

    def _on_event(self, msg):
        self._touch()
        record = {'stamp': {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec},
                  'track_id': msg.track_id, 'event': EVENT_NAMES.get(msg.event, msg.event),
                  'label': LABEL_NAMES.get(msg.label, msg.label),
                  'confidence': round(float(msg.confidence), 5),
                  'box': [msg.x, msg.y, msg.width, msg.height]}
        self.events_file.write(json.dumps(record, separators=(',', ':')) + '\n')
        self.stats.events += 1

    def _on_greeting(self, msg):
        self._touch()
        record = {'received': round(self.get_clock().now().nanoseconds * 1e-9, 3),
                  'text': msg.data}
        self.greetings_file.write(json.dumps(record, ensure_ascii=False) + '\n')
        self.stats.greetings += 1

    def _on_camera_frame(self, msg):
        record = {'stamp': {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec},
                  'width': msg.width, 'height': msg.height, 'encoding': msg.encoding,
                  'sha1': hashlib.sha1(msg.data).hexdigest()}
        self.camera_frames_file.write(json.dumps(record, separators=(',', ':')) + '\n')

    def _on_annotated(self, msg):
        self._touch()
        try:
            bgr = image_msg_to_array(msg)
        except ValueError as error:
            self.get_logger().error(f'annotated_image not recorded: {error}',
                                    throttle_duration_sec=5.0)
            return
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        if self.video_size is None:
            self.video_size = (bgr.shape[1], bgr.shape[0])
        if (bgr.shape[1], bgr.shape[0]) != self.video_size:
            bgr = cv2.resize(bgr, self.video_size, interpolation=cv2.INTER_AREA)
        stamp = stamp_seconds(msg.header.stamp)
        self._write_video_frame(stamp, np.ascontiguousarray(bgr))
        self.stats.annotated_frames += 1
        if self.first_image_stamp is None:
            self.first_image_stamp = stamp
        self.sheet.add(bgr, f'#{self.sheet.seen}  +{stamp - self.first_image_stamp:.2f} s')

    def _write_video_frame(self, stamp, bgr):
        if self.video is None:
            self.pending.append((stamp, bgr.copy()))    # msg.data is reused after the callback
            if self.video_fps > 0 or len(self.pending) >= FPS_ESTIMATE_FRAMES:
                self._open_video()
            return
        if self.video.isOpened():
            self.video.write(bgr)

    def _open_video(self):
        fps = self.video_fps
        if fps <= 0:
            span = self.pending[-1][0] - self.pending[0][0] if len(self.pending) > 1 else 0.0
            fps = (len(self.pending) - 1) / span if span > 0 else DEFAULT_VIDEO_FPS
            fps = round(min(max(fps, 1.0), 120.0), 2)
        path = self.output_dir / 'annotated.mp4'
        self.video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps,
                                     self.video_size)
        if not self.video.isOpened():
            self.get_logger().error(f'cannot write {path} (mp4v): annotated video off')
        else:
            self.get_logger().info(f'writing {path} at {fps:g} fps')
        for _, frame in self.pending:
            if self.video.isOpened():
                self.video.write(frame)
        self.pending = []

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if 'detector' in status.name.lower():
                level = status.level   # a `byte` field: bytes of length 1 in rclpy
                self.detector_diagnostics = {
                    'name': status.name,
                    'level': level[0] if isinstance(level, bytes) else int(level),
                    'message': status.message,
                    'values': {kv.key: kv.value for kv in status.values}}

    def _check_idle(self):
        if self.last_message is not None and not self.finished and \
                time.monotonic() - self.last_message >= self.idle_timeout:
            self.get_logger().info(f'no message for {self.idle_timeout:g} s: finishing')
            self.finished = True

    def summary(self):
        summary = self.stats.summary()
        summary['detector_diagnostics'] = self.detector_diagnostics
        return summary

    def close(self):
        """Flush and close every output file; write summary.json and summary.png."""
        if self.closed:
            return
        self.closed = True
        self.detections_file.close()
        self.events_file.close()
        self.greetings_file.close()
        if self.camera_frames_file is not None:
            self.camera_frames_file.close()
        if self.video is None and self.pending:
            self._open_video()
        if self.video is not None:
            self.video.release()
        sheet = self.sheet.render()
        if sheet is not None:
            cv2.imwrite(str(self.output_dir / 'summary.png'), sheet)
        summary = self.summary()
        (self.output_dir / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
        latency = summary['latency_ms']
        # After SIGTERM the context is gone and the logger cannot reach /rosout.
        log = self.get_logger().info if self.context.ok() else print
        log(
            f"recorded {summary['frames']} detection arrays ({summary['faces']} faces), "
            f"{summary['annotated_frames']} annotated frames; latency mean "
            f"{latency['mean']} ms, p95 {latency['p95']} ms")


def main(args=None):
    """Run demo_recorder until idle, SIGTERM or SIGINT; always write its files."""
    return run_node('demo_recorder', DemoRecorder, finished=lambda node: node.finished,
                    close=lambda node: node.close(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
