"""Live view in a browser: page state, MJPEG fan-out and the HTTP server (no ROS here).

viewer_node feeds three objects from its topics:

- `ViewerState` keeps what the page shows (current visitors, the last visitor events, the
  detector's diagnostics, image / detection rates and latency) and renders it as JSON;
- `FrameFanout` holds only the newest frame: one encoder thread turns it into a JPEG at most
  ``max_fps`` times per second, and only while someone watches; every client sends the newest
  JPEG when it is ready for one, so a slow client skips frames instead of queueing them, and a
  stalled one holds one JPEG and is dropped after ``client_timeout``;
- `ViewerServer` (the standard library's ThreadingHTTPServer) serves ``/`` (a self-contained
  page), ``/stream.mjpg``, ``/snapshot.jpg`` and ``/state.json``.
"""
import collections
from dataclasses import dataclass, replace
import errno
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import ipaddress
import json
import select
import socket
import threading
import time

import cv2

from mask_detection.viewer_page import PAGE_HTML

# Label and event values as in mask_detection_msgs (not imported: no ROS below the line).
LABEL_NAMES = {0: 'mask', 1: 'no_mask', 2: 'unknown'}
EVENT_NAMES = {0: 'appeared', 1: 'mask_state_changed', 2: 'left'}
DIAGNOSTIC_LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
# Visitors of a detections message older than this are not shown (the detector went silent).
VISITORS_STALE_AFTER_S = 5.0
RATE_WINDOW_S = 3.0
LATENCY_SAMPLES = 100
MAX_DIAGNOSTIC_STATUSES = 32
# Track ids remembered for "seconds present" after they vanish (short misses keep their start).
FORGET_TRACK_AFTER_S = 30.0
MAX_REMEMBERED_TRACKS = 1000
BOUNDARY = 'mask-detection-frame'
# Socket send buffer per stream viewer, bytes (the kernel doubles it): a few JPEG frames.
STREAM_SEND_BUFFER = 256 * 1024


@dataclass(frozen=True)
class ViewerConfig:
    """What the server listens on and how it streams (viewer_node's parameters)."""

    host: str = '127.0.0.1'
    port: int = 8080
    max_fps: float = 15.0
    jpeg_quality: int = 80
    max_clients: int = 32
    client_timeout: float = 10.0
    max_events: int = 20

    def __post_init__(self):
        problems = []
        if not isinstance(self.host, str) or not self.host.strip():
            problems.append('host must be a host name or address, e.g. 127.0.0.1 or 0.0.0.0')
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            problems.append(f'port must be in [0, 65535] (0 = any free port), got {self.port!r}')
        if not 0.1 <= self.max_fps <= 120.0:
            problems.append(f'max_fps must be in [0.1, 120], got {self.max_fps!r}')
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            problems.append(f'jpeg_quality must be in [1, 100], got {self.jpeg_quality!r}')
        if not isinstance(self.max_clients, int) or not 1 <= self.max_clients <= 1000:
            problems.append(f'max_clients must be in [1, 1000], got {self.max_clients!r}')
        if not 0.5 <= self.client_timeout <= 3600.0:
            problems.append(f'client_timeout must be in [0.5, 3600] s, got '
                            f'{self.client_timeout!r}')
        if not isinstance(self.max_events, int) or not 1 <= self.max_events <= 1000:
            problems.append(f'max_events must be in [1, 1000], got {self.max_events!r}')
        if problems:
            raise ValueError('; '.join(problems))

    @property
    def exposed(self):
        """Return True when other machines can reach the server (not a loopback address)."""
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host != 'localhost'


class RateMeter:
    """Events per second over the last ``window`` seconds (bounded memory)."""

    def __init__(self, window=RATE_WINDOW_S, max_samples=1024):
        self._window = window
        self._times = collections.deque(maxlen=max_samples)

    def add(self, now):
        self._times.append(now)

    def rate(self, now):
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        # Up to now, not to the last event: the rate falls when messages stop.
        return (len(self._times) - 1) / max(now - self._times[0], 1e-6)


class TopicStats:
    """Count, rate and stamp-to-arrival latency of one topic."""

    def __init__(self):
        self.received = 0
        self.last_arrival = None
        self._rate = RateMeter()
        self._latencies = collections.deque(maxlen=LATENCY_SAMPLES)

    def add(self, stamp, now, arrival):
        """Record a message stamped ``stamp`` (0 = unstamped) that arrived at ``now``."""
        self.received += 1
        self.last_arrival = arrival
        self._rate.add(arrival)
        if stamp > 0:
            self._latencies.append(max(0.0, now - stamp) * 1000.0)

    def summary(self, arrival_now):
        latencies = list(self._latencies)
        return {
            'received': self.received,
            'rate_hz': round(self._rate.rate(arrival_now), 2),
            'latency_ms_mean': round(sum(latencies) / len(latencies), 1) if latencies else None,
            'latency_ms_max': round(max(latencies), 1) if latencies else None,
            'last_age_s': (round(arrival_now - self.last_arrival, 2)
                           if self.last_arrival is not None else None),
        }


class ViewerState:
    """What the page shows, updated from the topics and read as JSON; thread-safe.

    Times: ``stamp`` arguments and ``clock()`` are seconds in the stamps' time base (ROS time);
    rates and ages use ``monotonic()``.
    """

    def __init__(self, max_events=20, clock=time.time, monotonic=time.monotonic):
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.images = TopicStats()
        self.detections = TopicStats()
        self.bad_images = 0
        self.image_size = None
        self._faces = []            # the newest detections message's faces (dicts)
        self._first_seen = {}       # track id -> [first stamp, last stamp]
        self._events = collections.deque(maxlen=max_events)
        self._diagnostics = collections.OrderedDict()

    def on_image(self, stamp, width, height):
        with self._lock:
            self.images.add(stamp, self._clock(), self._monotonic())
            self.image_size = (int(width), int(height))

    def on_bad_image(self):
        with self._lock:
            self.bad_images += 1

    def on_detections(self, stamp, faces):
        """Record a detections message: ``faces`` are dicts with MaskDetection's fields."""
        now = self._clock()
        seen_at = stamp if stamp > 0 else now
        with self._lock:
            self.detections.add(stamp, now, self._monotonic())
            self._faces = [dict(face) for face in faces]
            for face in self._faces:
                track_id = int(face.get('track_id', 0))
                if track_id:
                    times = self._first_seen.setdefault(track_id, [seen_at, seen_at])
                    times[0] = min(times[0], seen_at)
                    times[1] = max(times[1], seen_at)
            self._forget_tracks(seen_at)

    def _forget_tracks(self, now):
        for track_id, (_, last) in list(self._first_seen.items()):
            if now - last > FORGET_TRACK_AFTER_S:
                del self._first_seen[track_id]
        while len(self._first_seen) > MAX_REMEMBERED_TRACKS:
            oldest = min(self._first_seen, key=lambda key: self._first_seen[key][1])
            del self._first_seen[oldest]

    def on_event(self, stamp, event):
        """Record a visitor event: ``event`` is a dict with VisitorEvent's fields."""
        record = dict(event)
        record['time'] = stamp if stamp > 0 else self._clock()
        record['event_name'] = EVENT_NAMES.get(int(record.get('event', -1)), 'unknown')
        record['label_name'] = LABEL_NAMES.get(int(record.get('label', 2)), 'unknown')
        with self._lock:
            self._events.append(record)
            track_id = int(record.get('track_id', 0))
            if record['event_name'] == 'appeared' and track_id:
                times = self._first_seen.setdefault(track_id, [record['time']] * 2)
                times[0] = min(times[0], record['time'])
            elif record['event_name'] == 'left':
                self._first_seen.pop(track_id, None)

    def on_diagnostics(self, statuses):
        """Record diagnostic statuses: dicts with name, level, message, hardware_id, values."""
        arrival = self._monotonic()
        with self._lock:
            for status in statuses:
                record = dict(status)
                record['level_name'] = DIAGNOSTIC_LEVELS.get(int(record.get('level', 3)),
                                                             'STALE')
                record['arrival'] = arrival
                self._diagnostics.pop(record['name'], None)
                self._diagnostics[record['name']] = record
                while len(self._diagnostics) > MAX_DIAGNOSTIC_STATUSES:
                    self._diagnostics.popitem(last=False)

    def snapshot(self, stream=None):
        """Return the page's state as JSON-ready data; ``stream``: FrameFanout.stats()."""
        now, arrival_now = self._clock(), self._monotonic()
        with self._lock:
            detections = self.detections.summary(arrival_now)
            fresh = (detections['last_age_s'] is not None
                     and detections['last_age_s'] <= VISITORS_STALE_AFTER_S)
            visitors = []
            for face in (self._faces if fresh else []):
                track_id = int(face.get('track_id', 0))
                since = self._first_seen.get(track_id, [None])[0] if track_id else None
                visitors.append({
                    'track_id': track_id,
                    'label': int(face.get('label', 2)),
                    'label_name': LABEL_NAMES.get(int(face.get('label', 2)), 'unknown'),
                    'confidence': round(float(face.get('confidence', 0.0)), 3),
                    'mask_probability': round(float(face.get('mask_probability', 0.0)), 3),
                    'x': int(face.get('x', 0)), 'y': int(face.get('y', 0)),
                    'width': int(face.get('width', 0)), 'height': int(face.get('height', 0)),
                    'since': since,
                    'seconds_present': (round(max(0.0, now - since), 1)
                                        if since is not None else None),
                })
            events = [_rounded(event) for event in reversed(self._events)]
            diagnostics = {}
            for name, status in self._diagnostics.items():
                entry = {key: value for key, value in status.items() if key != 'arrival'}
                entry['age_s'] = round(arrival_now - status['arrival'], 2)
                diagnostics[name] = entry
            images = self.images.summary(arrival_now)
            images['bad'] = self.bad_images
            images['width'], images['height'] = self.image_size or (None, None)
        return {'time': now, 'visitors': visitors, 'events': events,
                'diagnostics': diagnostics, 'images': images, 'detections': detections,
                'stream': stream or {}}


def _rounded(event):
    return {key: round(value, 3) if isinstance(value, float) else value
            for key, value in event.items()}


class FrameFanout:
    """The newest frame, JPEG-encoded once, for any number of clients (newest frame each).

    ``offer()`` never blocks on clients: it replaces the waiting frame.  An encoder thread
    encodes at most ``max_fps`` frames per second and only while a client is registered.
    """

    def __init__(self, config):
        self._config = config
        self._condition = threading.Condition()
        self._raw = None                # newest frame (BGR ndarray), kept for new clients
        self._raw_seq = 0
        self._jpeg = None
        self._jpeg_seq = 0              # raw sequence number the current JPEG was made from
        self._encoded = 0
        self._offered = 0
        self._clients = 0
        self._frames_sent = 0
        self._frames_skipped = 0
        self._clients_dropped = 0       # disconnected for not accepting data in time
        self._fps = RateMeter()
        self._closed = False
        self._encoder = threading.Thread(target=self._encode_loop, name='jpeg-encoder',
                                         daemon=True)
        self._encoder.start()

    # ---- producer side -------------------------------------------------------------------

    def offer(self, bgr):
        """Make ``bgr`` (H x W x 3 uint8, not modified afterwards) the newest frame."""
        with self._condition:
            self._raw = bgr
            self._raw_seq += 1
            self._offered += 1
            self._condition.notify_all()

    def set_quality(self, jpeg_quality, max_fps):
        """Change the JPEG quality and rate cap (validated by ViewerConfig)."""
        with self._condition:
            self._config = replace(self._config, jpeg_quality=jpeg_quality, max_fps=max_fps)

    def _encode_loop(self):
        next_due = 0.0
        while True:
            with self._condition:
                while not self._closed and not (self._clients and self._raw_seq > self._jpeg_seq):
                    self._condition.wait(1.0)
                if self._closed:
                    return
                wait = next_due - time.monotonic()
            if wait > 0:
                # Frames offered meanwhile replace each other: the cap costs no memory.
                time.sleep(wait)
            with self._condition:
                raw, seq, config = self._raw, self._raw_seq, self._config
            ok, encoded = cv2.imencode('.jpg', raw,
                                       [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            now = time.monotonic()
            next_due = now + 1.0 / config.max_fps
            if not ok:
                continue
            with self._condition:
                self._jpeg, self._jpeg_seq = encoded.tobytes(), seq
                self._encoded += 1
                self._fps.add(now)
                self._condition.notify_all()

    # ---- client side ---------------------------------------------------------------------

    def register(self):
        """Add a client; False when ``max_clients`` are already connected."""
        with self._condition:
            if self._closed or self._clients >= self._config.max_clients:
                return False
            self._clients += 1
            self._condition.notify_all()
            return True

    def unregister(self, sent=0, skipped=0, timed_out=False):
        with self._condition:
            self._clients -= 1
            self._frames_sent += sent
            self._frames_skipped += skipped
            self._clients_dropped += int(timed_out)

    def newest(self, after_seq, timeout):
        """Return ``(seq, jpeg)`` newer than ``after_seq``, waiting up to ``timeout`` s.

        Returns None on timeout or when closed.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._closed and not (self._jpeg is not None
                                            and self._jpeg_seq > after_seq):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)
            if self._closed:
                return None
            return self._jpeg_seq, self._jpeg

    def stats(self):
        with self._condition:
            return {'clients': self._clients, 'max_clients': self._config.max_clients,
                    'frames_offered': self._offered, 'frames_encoded': self._encoded,
                    'frames_sent': self._frames_sent, 'frames_skipped': self._frames_skipped,
                    'clients_dropped': self._clients_dropped,
                    'fps': round(self._fps.rate(time.monotonic()), 2),
                    'max_fps': self._config.max_fps, 'jpeg_quality': self._config.jpeg_quality}

    @property
    def closed(self):
        return self._closed

    def close(self):
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._encoder.join(5.0)


class ViewerError(RuntimeError):
    """The server cannot start (address in use, unknown host, ...)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False      # shutting down never waits for a stalled client


class ViewerServer:
    """HTTP server of the live view; ``start()`` binds (ViewerError if it cannot)."""

    def __init__(self, config, state, fanout):
        self.config = config
        self.state = state
        self.fanout = fanout
        self._server = None
        self._thread = None

    def start(self):
        host, port = self.config.host, self.config.port
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as error:
            raise ViewerError(f'cannot resolve host {host!r}: {error.strerror}') from error
        server_class = type('_ViewerHTTPServer', (_Server,), {'address_family': family})
        handler = type('_Handler', (_Handler,), {'viewer': self,
                                                 'timeout': self.config.client_timeout})
        try:
            self._server = server_class((host, port), handler)
        except OSError as error:
            hint = (' (another viewer or program uses it: choose another port, or port 0 for '
                    'any free one)' if error.errno == errno.EADDRINUSE else '')
            raise ViewerError(f'cannot listen on {host}:{port}: {error.strerror}{hint}') \
                from error
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={'poll_interval': 0.2}, name='http-server',
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        host = self.config.host
        if host in ('0.0.0.0', '::', ''):
            host = socket.gethostname()
        elif ':' in host:
            host = f'[{host}]'
        return f'http://{host}:{self.port}/'

    def close(self):
        """Stop serving: stream clients end at their next frame wait (at most ~0.5 s)."""
        self.fanout.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5.0)


class _Handler(BaseHTTPRequestHandler):
    viewer = None               # ViewerServer, set by ViewerServer.start()
    server_version = 'mask_detection-viewer'
    protocol_version = 'HTTP/1.1'
    # The page needs nothing from elsewhere: a strict policy also proves it (no CDN).
    SECURITY_HEADERS = {
        'Content-Security-Policy': "default-src 'none'; img-src 'self'; connect-src 'self'; "
                                   "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-store',
    }

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass    # one line per request would flood the node's log

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for name, value in self.SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split('?', 1)[0]
        try:
            if path in ('/', '/index.html'):
                self._send(HTTPStatus.OK, 'text/html; charset=utf-8', PAGE_HTML.encode())
            elif path == '/state.json':
                state = self.viewer.state.snapshot(self.viewer.fanout.stats())
                self._send(HTTPStatus.OK, 'application/json',
                           json.dumps(state, allow_nan=False).encode())
            elif path == '/stream.mjpg':
                self._stream()
            elif path == '/snapshot.jpg':
                self._snapshot()
            else:
                self._send(HTTPStatus.NOT_FOUND, 'text/plain; charset=utf-8',
                           b'not found: try / , /stream.mjpg, /snapshot.jpg or /state.json\n')
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True        # the client went away: nothing to tell

    def _busy(self):
        self._send(HTTPStatus.SERVICE_UNAVAILABLE, 'text/plain; charset=utf-8',
                   f'too many viewers (max_clients = {self.viewer.config.max_clients})\n'
                   .encode())

    def _peer_closed(self):
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(
                1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _snapshot(self):
        fanout = self.viewer.fanout
        if not fanout.register():
            self._busy()
            return
        try:
            frame = fanout.newest(0, timeout=3.0)
        finally:
            fanout.unregister()
        if frame is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, 'text/plain; charset=utf-8',
                       b'no images yet\n')
        else:
            self._send(HTTPStatus.OK, 'image/jpeg', frame[1])

    def _stream(self):
        fanout = self.viewer.fanout
        if not fanout.register():
            self._busy()
            return
        self.close_connection = True
        # A small kernel buffer per viewer: bounded memory, and a stalled viewer is noticed
        # (its writes block) after a few frames, not after megabytes.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        sent = skipped = 0
        last_seq = None
        timed_out = False
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header('Content-Type', f'multipart/x-mixed-replace; boundary={BOUNDARY}')
            for name, value in self.SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header('Connection', 'close')
            self.end_headers()
            if self.command == 'HEAD':
                return
            while not fanout.closed:
                frame = fanout.newest(last_seq or 0, timeout=0.5)
                if frame is None:
                    if self._peer_closed():     # no frames to fail on: look for a hang-up
                        break
                    continue
                seq, jpeg = frame
                if last_seq is not None:
                    skipped += seq - last_seq - 1
                last_seq = seq
                # One write per frame: a client that accepts nothing for client_timeout s
                # raises socket.timeout here and is dropped, holding only this one JPEG.
                self.wfile.write(b''.join((
                    f'--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n'
                    f'Content-Length: {len(jpeg)}\r\n\r\n'.encode(), jpeg, b'\r\n')))
                sent += 1
        except socket.timeout:
            timed_out = True
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            fanout.unregister(sent, skipped, timed_out)
