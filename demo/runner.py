"""Run the product end to end: camera_node -> detector_node -> greeter_node + recorder; a report.

    make demo                        # the built-in demo video (built once, then cached)
    make demo VIDEO=path/to/file.mp4
    make live                        # /dev/video0 until Ctrl-C (or --duration)
    scripts/in_env.sh python -m demo --help

viewer_node runs alongside: the runner prints the live view's URL (http://127.0.0.1:8080/, or
another free port when 8080 is taken) while the nodes run; --no-viewer leaves it out.

Starts the four nodes as real ROS 2 processes in a DDS domain of their own, plays the video once
(loop false), waits for the camera to finish and the recorder to drain, stops every process
(SIGTERM, then SIGKILL after a timeout) and prints a table.  Outputs go to ``demo_output/``
(see mask_detection/demo_recorder.py); node logs to ``demo_output/logs/``.  Exit code 0 only
when detections were received.
"""
import argparse
from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
import random
import re
import signal
import socket
import sys
import time

import cv2
import numpy as np

from demo import video as demo_video
from tools.ros_graph import NodeProcess, set_fastdds_profile

ROOT = Path(__file__).resolve().parents[1]
# Test runs take domains 1..100 (conftest.py); the demo picks from the rest of Fast DDS's range.
DEMO_DOMAINS = range(101, 200)
LABELS = ('mask', 'no_mask', 'unknown')
VIEWER_URL = re.compile(r'live view at (http://\S+/) ')


class DemoError(RuntimeError):
    """The demo cannot run or failed; the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frame_count: int
    fps: float
    width: int
    height: int
    truth_path: Path = None


def probe_video(path):
    """Return the frame count, rate and size of a video file OpenCV can read."""
    path = Path(path)
    if path.is_dir():
        raise DemoError(f'video {path} is a directory, not a video file')
    if not path.is_file():
        raise DemoError(f'video {path} does not exist')
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DemoError(f'OpenCV cannot open {path} (not a video, or an unsupported codec)')
    count = 0
    while capture.grab():
        count += 1   # counted, not read from the header: headers are often wrong
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    if count == 0:
        raise DemoError(f'{path} has no readable frame')
    return VideoInfo(path, count, fps, width, height)


class GraphWatcher:
    """A small rclpy node in the demo's domain, to wait until the nodes are connected."""

    def __init__(self, domain_id):
        import rclpy
        from rclpy.signals import SignalHandlerOptions
        self.rclpy = rclpy
        # This process's participant reads the nodes' profile too (Fast DDS 2.x or 3).
        set_fastdds_profile(os.environ)
        self.context = rclpy.Context()
        # Ctrl-C stays a KeyboardInterrupt in the runner, which then stops the nodes.
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('demo_runner_watch', context=self.context)

    def ready(self):
        node = self.node
        return (node.count_subscribers('/image_raw') >= 1
                and node.count_publishers('/detections') >= 1
                and node.count_subscribers('/detections') >= 1
                and node.count_subscribers('/annotated_image') >= 1
                # the recorder and the greeter; the recorder hears the greetings
                and node.count_subscribers('/visitor_events') >= 2
                and node.count_subscribers('/greeting') >= 1)

    def close(self):
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def wait_until(predicate, timeout, processes, period=0.1):
    """Wait for ``predicate()``; raise DemoError if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if not process.running:
                raise DemoError(f'{process.name} exited with code {process.process.returncode} '
                                f'before the demo started:\n{process.log_tail()}')
        time.sleep(period)
    raise DemoError(f'the nodes did not connect within {timeout:g} s:\n' + '\n'.join(
        f'  {p.name}:\n{p.log_tail(8)}' for p in processes))


def read_records(path):
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def detector_counts(diagnostics):
    """Return the detector's own frame counters from its last diagnostics, or {}.

    ``dropped``: frames replaced by a newer one before it got to them (it processes the newest
    frame only); ``bad``: frames it rejected; ``received``: when it reports it.
    """
    values = (diagnostics or {}).get('values', {})
    counts = {}
    for name, key in (('dropped', 'dropped_frames_total'), ('bad', 'bad_frames_total'),
                      ('received', 'received_frames_total')):
        try:
            counts[name] = int(float(values[key]))
        except (KeyError, ValueError):
            pass
    return counts


def _match_faces(faces, detections, iou_threshold):
    """Return (true face, detection) pairs, each true face with its best detection."""
    pairs = []
    for face in faces:
        best, best_iou = None, 0.0
        for d in detections:
            ix = max(0.0, min(face['x'] + face['width'], d['x'] + d['width'])
                     - max(face['x'], d['x']))
            iy = max(0.0, min(face['y'] + face['height'], d['y'] + d['height'])
                     - max(face['y'], d['y']))
            inter = ix * iy
            iou = inter / (face['width'] * face['height'] + d['width'] * d['height'] - inter)
            if iou > best_iou:
                best, best_iou = d, iou
        if best is not None and best_iou >= iou_threshold:
            pairs.append((face, best))
    return pairs


def video_frame_digests(video_path):
    """Return the SHA-1 of every decoded frame of a video, in order (as camera_node sends them)."""
    capture = cv2.VideoCapture(str(video_path))
    digests = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        digests.append(hashlib.sha1(np.ascontiguousarray(frame).data).hexdigest())
    capture.release()
    return digests


def frame_index_by_stamp(camera_frames, video_digests):
    """Map each camera frame's stamp ``(sec, nanosec)`` to its index in the video.

    Frames are matched by the SHA-1 of their pixels; the camera plays in order, so identical
    frames (a still scene) take the first unused index after the previous match.
    """
    positions = {}
    for index, digest in enumerate(video_digests):
        positions.setdefault(digest, []).append(index)
    mapping, last = {}, -1
    for frame in sorted(camera_frames, key=lambda f: (f['stamp']['sec'], f['stamp']['nanosec'])):
        later = [i for i in positions.get(frame['sha1'], ()) if i > last]
        if later:
            last = later[0]
            mapping[(frame['stamp']['sec'], frame['stamp']['nanosec'])] = last
    return mapping


def _record_frame_indices(records, stamps, fps, known):
    """Return ``(index, exact)`` per record: exact from ``known``, else estimated.

    Without a known index (no digests, or the recorder missed that camera frame) the index is
    estimated from the stamp and the nearest earlier known frame (the first record is frame 0:
    the camera waits for the detector and the detector processes the first frame it gets).
    """
    result = []
    anchor_stamp, anchor_index = stamps[0], 0
    for record, stamp in zip(records, stamps):
        key = (record['stamp']['sec'], record['stamp']['nanosec'])
        if key in known:
            anchor_stamp, anchor_index = stamp, known[key]
            result.append((known[key], True))
        else:
            result.append((anchor_index + int(round((stamp - anchor_stamp) * fps)), False))
    return result


def truth_agreement(records, truth_path, iou_threshold=0.3, camera_frames=None,
                    video_path=None):
    """Compare detections with the demo video's true faces; None without truth or records.

    Each record is compared with the true faces of its video frame: known exactly when
    ``camera_frames`` (demo_recorder's stamps and SHA-1s of the camera's frames) and the video
    are given; otherwise estimated from its stamp, and then the frames next to the estimate are
    tried too (a loaded camera publishes late, so stamps drift from index / fps).
    Returns how many true faces the processed frames held, how many of them a detection
    overlaps (IoU >= ``iou_threshold``), how many of those got the true label, and for how many
    records the frame was known exactly.
    """
    if truth_path is None or not records:
        return None
    meta = json.loads(Path(truth_path).read_text())
    truth = meta['faces']
    fps = meta['spec']['fps']
    stamps = [r['stamp']['sec'] + r['stamp']['nanosec'] * 1e-9 for r in records]
    known = {}
    if camera_frames and video_path is not None:
        known = frame_index_by_stamp(camera_frames, video_frame_digests(video_path))
    found = total = agree = exact_frames = 0
    indices = _record_frame_indices(records, stamps, fps, known)
    for record, (estimate, exact) in zip(records, indices):
        exact_frames += exact
        best = None
        for index in ((estimate,) if exact else (estimate, estimate - 1, estimate + 1)):
            if 0 <= index < len(truth):
                matches = _match_faces(truth[index], record['detections'], iou_threshold)
                # The frame whose true faces the detections explain best: most matched,
                # then fewest missed.
                score = (len(matches), len(matches) - len(truth[index]))
                if best is None or score > best[2]:
                    best = (truth[index], matches, score)
        if best is None:
            continue
        total += len(best[0])
        found += len(best[1])
        agree += sum(face['label'] == detection['label'] for face, detection in best[1])
    return {'true_faces': total, 'found': found, 'label_agrees': agree,
            'frames_known_exactly': exact_frames}


def format_table(summary, extra):
    """Return the report table as text."""
    latency = summary.get('latency_ms') or {}
    labels = summary.get('labels') or {}

    def ms(value):
        return f'{value:.1f} ms' if value is not None else 'n/a'
    rows = [
        ('video frames', extra.get('video_frames', 'n/a')),
        ('frames processed (detection arrays)', summary.get('frames', 0)),
        ('frames dropped by the detector (busy)', extra.get('dropped', 'n/a')),
        ('frames the detector never received', extra.get('unseen', 'n/a')),
        ('frames with a face', summary.get('frames_with_faces', 0)),
        ('faces found', summary.get('faces', 0)),
        ('  mask / no mask / unknown', ' / '.join(str(labels.get(n, 0)) for n in LABELS)),
        ('latency mean / p95 (capture -> detections)',
         f"{ms(latency.get('mean'))} / {ms(latency.get('p95'))}"),
        ('detection rate', f"{summary['fps']:.1f} fps" if summary.get('fps') else 'n/a'),
        ('annotated frames recorded', summary.get('annotated_frames', 0)),
        ('visitor events', summary.get('events', 0)),
        ('greetings (greeter_node)', summary.get('greetings', 0)),
    ]
    agreement = extra.get('truth')
    if agreement and agreement['true_faces']:
        rows.append(('true faces found (IoU >= 0.3)',
                     f"{agreement['found']} of {agreement['true_faces']} (video frame known "
                     f"exactly for {agreement.get('frames_known_exactly', 0)} of "
                     f"{summary.get('frames', 0)} arrays)"))
        if agreement['found']:
            rows.append(('  of those, label = truth',
                         f"{agreement['label_agrees']} "
                         f"({100.0 * agreement['label_agrees'] / agreement['found']:.0f} %)"))
    width = max(len(name) for name, _ in rows)
    lines = [f'  {name:<{width}}  {value}' for name, value in rows]
    greetings = extra.get('greetings') or []
    if greetings:
        start = greetings[0]['received']
        lines += ['  greetings, in order:'] + [
            f"    {g['received'] - start:6.1f} s  {g['text']}" for g in greetings]
    return '\n'.join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Run camera_node, detector_node and demo_recorder on a video or a camera '
                    'and report what was detected.')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--video', type=Path,
                        help='video file to play once (default: the built-in demo video)')
    source.add_argument('--camera', help='camera device to run live, e.g. /dev/video0')
    parser.add_argument('--duration', type=float, default=None,
                        help='built-in video: its length in seconds (default '
                             f'{demo_video.VideoSpec.duration_s:g}); camera: stop after this '
                             'many seconds (default: until Ctrl-C)')
    parser.add_argument('--output-dir', type=Path, default=ROOT / 'demo_output')
    parser.add_argument('--domain-id', type=int, default=None,
                        help=f'ROS_DOMAIN_ID for the nodes (default: a random one in '
                             f'{DEMO_DOMAINS.start}..{DEMO_DOMAINS.stop - 1})')
    parser.add_argument('--detector-param', action='append', default=[], metavar='NAME=VALUE',
                        help='extra detector_node parameter (repeatable), e.g. '
                             'face_detector=haar')
    parser.add_argument('--speak', action='store_true',
                        help='greeter_node also speaks the greetings (espeak-ng, audio device)')
    parser.add_argument('--viewer-port', type=int, default=8080,
                        help='port of the live view (viewer_node); when it is taken, any free '
                             'port (default %(default)s)')
    parser.add_argument('--viewer-host', default='127.0.0.1',
                        help='address the live view listens on; 0.0.0.0 lets other machines '
                             'see the stream, which shows faces (default %(default)s)')
    parser.add_argument('--no-viewer', action='store_true', help='do not start viewer_node')
    parser.add_argument('--start-timeout', type=float, default=90.0,
                        help='seconds to wait for the nodes to connect (model loading)')
    parser.add_argument('--stop-timeout', type=float, default=10.0,
                        help='seconds between SIGTERM and SIGKILL')
    args = parser.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        parser.error('--duration must be > 0')
    return args


def _detector_params(pairs):
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition('=')
        if not sep or not name:
            raise DemoError(f'--detector-param {pair!r}: expected NAME=VALUE')
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        if value in ('true', 'false'):
            value = value == 'true'
        params[name] = value
    return params


def viewer_port(host, wanted):
    """Return ``wanted`` if it can be bound on ``host`` now, else 0 (any free port)."""
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, wanted))
        except OSError:
            return 0
    return wanted


def start_viewer(args, domain, log_dir):
    """Start viewer_node, print its URL and return (process, URL).

    (None, None) with a warning when it does not come up: the demo goes on without it.
    """
    port = viewer_port(args.viewer_host, args.viewer_port)
    if port != args.viewer_port:
        print(f'[demo] port {args.viewer_port} is taken: the live view takes a free one')
    viewer = NodeProcess('viewer_node', domain, log_dir, log_name='viewer_node.log', params={
        'host': args.viewer_host, 'port': port}).start()
    if not viewer.wait_for_log(VIEWER_URL.pattern, 30.0):
        print(f'[demo] WARNING: the live view did not start (the demo goes on):\n'
              f'{viewer.log_tail(5)}', file=sys.stderr)
        viewer.stop()
        return None, None
    url = VIEWER_URL.search(viewer.log()).group(1)
    print(f'[demo] live view: open {url} in a browser (stream, visitors, events) while the '
          'demo runs')
    return viewer, url


def prepare_source(args):
    """Return (camera_node parameters, VideoInfo or None for a camera)."""
    if args.camera:
        if not os.path.exists(args.camera):
            raise DemoError(
                f'no camera at {args.camera}: plug one in (ls /dev/video*), pass another '
                'device with CAMERA=/dev/videoN, or run `make demo` on a video instead')
        return {'source': args.camera}, None
    if args.video:
        info = probe_video(args.video)
        print(f'[demo] video {info.path}: {info.frame_count} frames, {info.width}x{info.height} '
              f'at {info.fps:g} fps')
    else:
        spec = demo_video.VideoSpec(duration_s=args.duration or demo_video.VideoSpec.duration_s)
        started = time.monotonic()
        video = demo_video.demo_video(spec)
        took = time.monotonic() - started
        print(f'[demo] built-in demo video ({"built" if took > 0.5 else "cached"} in '
              f'{took:.1f} s): {video.path}')
        info = VideoInfo(video.path, video.frame_count, video.fps, video.width, video.height,
                         video.truth_path)
    # Wait for the detector's subscription: frames sent before DDS discovery would be lost.
    return {'source': str(info.path.resolve()), 'loop': False, 'wait_for_subscribers': 1}, info


def run(args):
    camera_params, video = prepare_source(args)
    out = args.output_dir
    log_dir = out / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id if args.domain_id is not None else \
        random.Random(os.getpid() ^ time.time_ns()).choice(DEMO_DOMAINS)
    print(f'[demo] ROS_DOMAIN_ID={domain}, outputs in {out}, logs in {log_dir}')

    detector_params = {}
    if video:
        # A file: account for every frame.  The camera waits until its writer has matched the
        # detector's reader, but the reader may match the writer a moment later and miss the
        # first frames: 0-4 with best effort here, 0-1 with reliable (which repairs what was
        # sent after the match).  Live cameras keep the sensor-data default.
        detector_params['qos_reliability'] = 'reliable'
    detector_params.update(_detector_params(args.detector_param))
    detector = NodeProcess('detector_node', domain, log_dir, params=detector_params,
                           remaps={'image': 'image_raw'}, log_name='detector_node.log')
    # annotated.mp4 at the rate the detector processes, measured by the recorder (real time).
    # Idle for 4 s: the visitors leave (VISITOR_LEFT, goodbyes) 2 s (leave_timeout) after the
    # last image.
    # With a video of known truth, the recorder notes each camera frame's digest: the report
    # then knows which video frame each detection array belongs to.
    frame_digests = bool(video and video.truth_path)
    recorder = NodeProcess('demo_recorder', domain, log_dir, params={
        'output_dir': str(out.resolve()), 'idle_timeout': 4.0,
        'camera_frame_digests': frame_digests}, log_name='demo_recorder.log')
    if frame_digests:
        # The recorder reads image_raw too: the camera waits for both readers.
        camera_params['wait_for_subscribers'] = 2
    greeter = NodeProcess('greeter_node', domain, log_dir, params={
        'speak': args.speak}, log_name='greeter_node.log')
    camera = NodeProcess('camera_node', domain, log_dir, params=camera_params,
                         log_name='camera_node.log')
    watcher = viewer = viewer_url = None
    started = time.monotonic()
    played_to_end = False
    try:
        detector.start()
        recorder.start()
        greeter.start()
        if not args.no_viewer:
            viewer, viewer_url = start_viewer(args, domain, log_dir)
        watcher = GraphWatcher(domain)
        wait_until(watcher.ready, args.start_timeout, [detector, recorder, greeter])
        print(f'[demo] detector, greeter and recorder connected after '
              f'{time.monotonic() - started:.1f} s; starting the camera')
        camera.start()
        if video:
            # Real time playback, plus slack for a loaded machine.
            limit = video.frame_count / video.fps * 3 + 30
            code = camera.wait(limit)
            if code is None:
                raise DemoError(f'camera_node still playing after {limit:.0f} s:\n'
                                f'{camera.log_tail()}')
            if code != 0:
                raise DemoError(f'camera_node failed (exit code {code}):\n{camera.log_tail()}')
            played_to_end = True
            print(f'[demo] camera played the video to its end after '
                  f'{time.monotonic() - started:.1f} s; draining')
        else:
            print('[demo] live: press Ctrl-C to stop' + (
                f' (stopping after {args.duration:g} s)' if args.duration else '') + (
                f'; live view at {viewer_url}' if viewer_url else ''))
            code = camera.wait(args.duration) if args.duration else camera.wait(None)
            if code not in (None, 0):
                raise DemoError(f'camera_node failed (exit code {code}):\n{camera.log_tail()}')
            camera.stop(args.stop_timeout)      # --duration is over: no new frames
        # The recorder ends by itself 4 s after the last message: the detector's last results.
        if recorder.wait(30.0) is None:
            print('[demo] recorder still busy 30 s after the camera ended: stopping it',
                  file=sys.stderr)
    except KeyboardInterrupt:
        print('\n[demo] interrupted: stopping the nodes')
    finally:
        if watcher is not None:
            watcher.close()
        # Camera first (no new frames), then the recorder (writes its files), then the detector.
        codes = {p.name: stop_node(p, args.stop_timeout)
                 for p in (camera, recorder, greeter, detector)}
        if viewer is not None:
            codes[viewer.name] = stop_node(viewer, args.stop_timeout)
    wall = time.monotonic() - started
    print(f'[demo] all nodes stopped after {wall:.1f} s (exit codes: '
          + ', '.join(f'{name} {code}' for name, code in codes.items()) + ')')
    return report(out, video if played_to_end else None, detector, codes, wall)


def stop_node(process, timeout):
    """Stop a node; return its exit code, or 'stopped' when the demo's SIGTERM ended it.

    A node signalled before it has set up its own handler (still importing, loading models)
    dies of the signal: exit code -15, which is the demo's doing, not a failure of the node.
    """
    signalled = process.running
    code = process.stop(timeout)
    return 'stopped' if signalled and code == -signal.SIGTERM else code


def report(out, video, detector, codes, wall):
    """Print the table; ``video`` is None for a camera or a video not played to the end."""
    summary_path = out / 'summary.json'
    if not summary_path.is_file():
        raise DemoError(f'demo_recorder wrote no {summary_path} (exit codes {codes}):\n'
                        f'{detector.log_tail()}')
    summary = json.loads(summary_path.read_text())
    records = read_records(out / 'detections.jsonl')
    counts = detector_counts(summary.get('detector_diagnostics'))
    dropped = counts.get('dropped')
    extra = {'video_frames': video.frame_count if video else 'n/a',
             'dropped': dropped if dropped is not None else 'n/a',
             'greetings': read_records(out / 'greetings.jsonl')}
    if video is not None and dropped is not None:
        # Frames the detector never saw: sent before DDS matched the two, or lost in transport.
        extra['unseen'] = video.frame_count - len(records) - dropped - counts.get('bad', 0)
    if video is not None and video.truth_path is not None:
        camera_frames = read_records(out / 'camera_frames.jsonl')
        extra['truth'] = truth_agreement(records, video.truth_path, camera_frames=camera_frames,
                                         video_path=video.path)
    summary['run'] = {'video': str(video.path) if video else None,
                      'video_frames': video.frame_count if video else None,
                      'detector_dropped': dropped, 'detector_bad': counts.get('bad'),
                      'detector_received': counts.get('received'),
                      'unseen_by_detector': extra.get('unseen'), 'exit_codes': codes,
                      'wall_s': round(wall, 2), 'truth': extra.get('truth')}
    summary_path.write_text(json.dumps(summary, indent=2) + '\n')
    print('\n[demo] results (a smoke demo: accuracy numbers are in the model card / benchmarks)')
    print(format_table(summary, extra))
    print(f'\n[demo] wrote {out}/detections.jsonl, events.jsonl, greetings.jsonl, '
          f'annotated.mp4, summary.png, summary.json ({wall:.1f} s of nodes running)')
    if summary.get('frames', 0) == 0:
        print('[demo] FAILED: no detections were received. detector_node log:\n'
              + detector.log_tail(), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (DemoError, FileNotFoundError) as error:
        print(f'[demo] ERROR: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
