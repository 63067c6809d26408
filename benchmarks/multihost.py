"""Camera on one host, detector on another: two network namespaces on this machine (root).

    scripts/in_env.sh python -m benchmarks.multihost [--rate 30] [--seconds 20] [--limit 20mbit]
        [--rounds 1] [--transports compressed raw] [--jpeg-quality 60] [--json OUT]

Host a runs camera_node (playing a video of real frames at --rate) and a listener that records
the stamp of every published raw image (over shared memory: no traffic on the link); host b runs
detector_node (``image_transport`` raw or compressed) and a listener for ``detections`` and
``/diagnostics``.  Every process uses the shipped network profile (config/fastdds_large_shm.xml)
with ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET, as on two real machines.  Printed per run: frames
published / delivered to the detector / answered, capture-to-detections latency (image stamp ->
detections received on host b; one clock), bytes/s sent by host a over the link, CPU of both
nodes; a "local" row runs camera and detector on host b (shared memory) for comparison.

``run_graph`` is what the two-host graph test uses too; ``python -m benchmarks.multihost listen``
is the listener process.
"""
import argparse
import json
import os
from pathlib import Path
import signal
import sys
import tempfile
import time

from tools.ros_graph import NodeProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
NETWORK_PROFILE = (REPO_ROOT / 'install' / 'mask_detection' / 'share' / 'mask_detection' /
                   'config' / 'fastdds_large_shm.xml')


# ---------------------------------------------------------------------------------------------
# The listener process

def listen_main(args):
    """Record what arrives until SIGTERM, then write it to --out as JSON."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mask_detection.node_runner import run_node

    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    record = {'images': [], 'detections': [], 'diagnostics': {}}

    def on_image(msg):
        record['images'].append([msg.header.stamp.sec, msg.header.stamp.nanosec,
                                 msg.header.frame_id, time.time_ns()])

    def on_detections(msg):
        record['detections'].append([
            msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id,
            time.time_ns(), msg.image_width, msg.image_height,
            [[d.x, d.y, d.width, d.height] for d in msg.detections]])

    def on_diagnostics(msg):
        for status in msg.status:
            if 'detector' in status.name:
                record['diagnostics'] = {kv.key: kv.value for kv in status.values}

    def build():
        node = rclpy.create_node(f'multihost_listener_{os.getpid()}')
        if args.images:
            from sensor_msgs.msg import Image
            node.create_subscription(Image, args.images, on_image, reliable)
        if args.probe:
            # In place of detector_node: the same subscription (best effort, depth 2) and frame
            # decoding, no vision; a received, decoded frame is recorded as an empty answer.
            from rclpy.qos import qos_profile_sensor_data
            from sensor_msgs.msg import CompressedImage, Image
            from mask_detection.image_codec import msg_to_bgr

            def on_frame(msg):
                height, width = msg_to_bgr(msg).shape[:2]
                record['detections'].append([msg.header.stamp.sec, msg.header.stamp.nanosec,
                                             msg.header.frame_id, time.time_ns(), width, height,
                                             []])
            compressed = args.probe == 'compressed'
            node.create_subscription(
                CompressedImage if compressed else Image,
                'image_raw/compressed' if compressed else 'image_raw', on_frame,
                QoSProfile(depth=2, reliability=qos_profile_sensor_data.reliability))
        if args.detections:
            from diagnostic_msgs.msg import DiagnosticArray
            from mask_detection_msgs.msg import MaskDetectionArray
            node.create_subscription(MaskDetectionArray, args.detections, on_detections, reliable)
            node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
        print('listener: ready', flush=True)
        return node

    def write_record(node):
        Path(args.out).write_text(json.dumps(record))

    # The nodes' own runner: Python-level SIGINT / SIGTERM handling and a spin that comes back
    # to Python every 0.1 s (with rclpy's default handlers a listener once took over 30 s to
    # end after SIGTERM on Kilted, under load); the record is written before the node goes.
    return run_node('multihost_listener', build, close=write_record, args=[])


class Listener(NodeProcess):
    """The listener as a child process; ``wrap`` places it inside a host."""

    def __init__(self, log_dir, env, wrap, images=None, detections=None, probe=None,
                 name='listener'):
        self.name = self.executable = name
        self.out = Path(log_dir) / f'{name}-{time.monotonic_ns()}.json'
        self.log_path = Path(log_dir) / f'{name}-{time.monotonic_ns()}.log'
        command = [sys.executable, '-m', 'benchmarks.multihost', 'listen', '--out', str(self.out)]
        if images:
            command += ['--images', images]
        if detections:
            command += ['--detections', detections]
        if probe:
            command += ['--probe', probe]
        self.command = wrap(command)
        self.env = dict(env, PYTHONPATH=f'{REPO_ROOT}{os.pathsep}{env.get("PYTHONPATH", "")}')
        self.process = None

    def wait_ready(self, timeout=30.0):
        if not self.wait_for_log('listener: ready', timeout):
            raise RuntimeError(f'listener did not start:\n{self.log()}')

    def stop(self, timeout=30.0):
        """Stop it and return what it recorded (a loaded machine can take a while)."""
        super().stop(timeout)
        if not self.out.is_file():
            raise RuntimeError(f'listener wrote nothing ({self.process.returncode}):\n'
                               f'{self.log()}')
        return json.loads(self.out.read_text())


# ---------------------------------------------------------------------------------------------
# One run: camera -> detector, on two hosts or one

def network_environment(domain_id, extra=None):
    """Return the environment of a process on one of the hosts: the shipped network profile."""
    from tools.ros_graph import node_environment
    env = {'FASTDDS_DEFAULT_PROFILES_FILE': str(NETWORK_PROFILE),
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
    if os.environ.get('ROS_DISTRO') in ('humble', 'jazzy'):
        # Their Fast DDS 2 reads only this one (Fast DDS 3 warns that it is deprecated).
        env['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(NETWORK_PROFILE)
    env.update(extra or {})
    return node_environment(domain_id, env)


def _stamp_ns(sec, nanosec):
    return sec * 1_000_000_000 + nanosec


def run_graph(hosts, video, log_dir, *, transport='raw', camera_host='a', domain_id,
              camera_params=None, detector_params=None, env_a=None, env_b=None,
              timeout=120.0, cpu=False, probe=False):
    """Play ``video`` through camera_node (host ``camera_host``) -> detector_node (host b).

    Returns a dict: camera image stamps seen on the camera's host, detections (stamp, frame id,
    receive time, size, boxes) and the detector's last diagnostics on host b, bytes sent by
    host a, run seconds, the node logs and exit codes, CPU seconds when ``cpu``.  ``probe``:
    no detector_node; a listener on host b subscribes and decodes like it (transport only).
    """
    from benchmarks.graph_benchmark import cpu_seconds

    if not NETWORK_PROFILE.is_file():
        raise FileNotFoundError(f'{NETWORK_PROFILE} is not installed: run `make setup`')
    log_dir = Path(log_dir)
    env = {'a': network_environment(domain_id, env_a), 'b': network_environment(domain_id, env_b)}
    camera_env = env[camera_host]
    detector = NodeProcess('detector_node', domain_id, log_dir, params={
        'image_transport': transport, **(detector_params or {})},
        remaps={'image': 'image_raw'})
    detector.env, detector.command = env['b'], hosts.wrap('b', detector.command)
    camera = NodeProcess('camera_node', domain_id, log_dir, params={
        'source': str(video), 'wait_for_subscribers': 2, 'frame_id': 'robot_camera',
        **(camera_params or {})})
    camera.env, camera.command = camera_env, hosts.wrap(camera_host, camera.command)
    image_listener = Listener(log_dir, camera_env, lambda c: hosts.wrap(camera_host, c),
                              images='image_raw', name='image-listener')
    result_listener = Listener(log_dir, env['b'], lambda c: hosts.wrap('b', c),
                               detections=None if probe else 'detections',
                               probe=transport if probe else None, name='detection-listener')
    started = []
    try:
        for process in (image_listener, result_listener):
            process.start()
            started.append(process)
        for process in (image_listener, result_listener):
            process.wait_ready()
        if not probe:
            detector.start()
            started.append(detector)
        # The camera waits for both subscriptions (image listener, detector) before playing.
        tx_start = hosts.tx_bytes('a')
        camera.start()
        started.append(camera)
        cpu_start = {}
        if cpu:
            cpu_start = {'camera': cpu_seconds(camera.process.pid)}
            if not probe:
                cpu_start['detector'] = cpu_seconds(detector.process.pid)
        playing = camera.wait_for_log(r'opened ', timeout)
        t_play = time.monotonic()
        cpu_end = {}
        exit_code = None
        # Not playing: the camera never saw both subscriptions (no discovery across hosts).
        deadline = time.monotonic() + (timeout if playing else 0.0)
        while exit_code is None and time.monotonic() < deadline:
            exit_code = camera.wait(0.05)
            if cpu and exit_code is None:
                cpu_end['camera'] = cpu_seconds(camera.process.pid)
        t_end = time.monotonic()
        tx_end = hosts.tx_bytes('a')
        time.sleep(2.5)         # the last detections, and a diagnostics message after them
        if cpu and not probe:
            cpu_end['detector'] = cpu_seconds(detector.process.pid)
        images = image_listener.stop()
        results = result_listener.stop()
    finally:
        for process in reversed(started):
            process.stop()
    return {
        'transport': transport, 'camera_host': camera_host, 'playing': playing,
        'camera_exit_code': exit_code, 'seconds': t_end - t_play,
        'tx_bytes_a': tx_end - tx_start,
        'image_stamps': [[s, n, f] for s, n, f, _ in images['images']],
        'detections': results['detections'], 'diagnostics': results['diagnostics'],
        'cpu_seconds': {name: cpu_end[name] - cpu_start[name] for name in cpu_start
                        if name in cpu_end},
        'camera_log': camera.log(), 'detector_log': detector.log(),
        'detector_running': probe or detector.process.returncode in (None, 0, -signal.SIGTERM),
    }


def summarise(run):
    """Return frames published / delivered / answered, latency percentiles, bytes/s, CPU %."""
    import numpy as np
    published = {_stamp_ns(s, n) for s, n, _ in run['image_stamps']}
    answered = {}
    for sec, nanosec, _, received_ns, *_ in run['detections']:
        answered.setdefault(_stamp_ns(sec, nanosec), received_ns)
    latencies = [(answered[s] - s) * 1e-6 for s in sorted(published) if s in answered]
    diagnostics = run['diagnostics']
    skipped = (int(diagnostics.get('dropped_frames_total', 0))
               + int(diagnostics.get('bad_frames_total', 0)))
    seconds = max(run['seconds'], 1e-9)
    return {
        'published': len(published),
        # A publisher throttled by a full link (UDP send buffer) publishes below the rate.
        'published_hz': len(published) / seconds,
        'answered': len(latencies),
        # Frames that reached the detector: answered, or skipped there while it was busy.
        'delivered': len(latencies) + skipped,
        'skipped_by_detector': skipped,
        'latency_ms': {q: float(np.percentile(latencies, q)) if latencies else float('nan')
                       for q in (50, 95, 99)},
        'link_bytes_per_s': run['tx_bytes_a'] / seconds,
        'cpu_percent': {name: 100.0 * value / seconds
                        for name, value in run['cpu_seconds'].items()},
    }


# ---------------------------------------------------------------------------------------------
# The benchmark

def write_benchmark_video(path, rate, seconds, images=None):
    """Write a lossless video of real 640x480 frames (dev set, cycled) for camera_node."""
    import cv2
    from benchmarks.common import load_frames
    frames, source = load_frames(images, (640, 480), 40)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'FFV1'), rate, (640, 480))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write FFV1 video {path}')
    count = int(round(rate * seconds))
    for index in range(count):
        # Each image held for 3 frames: a scene that changes, as in front of a robot.
        writer.write(frames[(index // 3) % len(frames)])
    writer.release()
    return count, source


def codec_costs(frames, qualities, repeats=3):
    """Return per-frame ms and bytes of JPEG (each quality) and PNG encode/decode, and raw."""
    import numpy as np
    from sensor_msgs.msg import CompressedImage, Image
    from mask_detection import image_codec
    rows = []

    def timed(function):
        times = []
        for _ in range(repeats):
            for frame in frames:
                start = time.perf_counter()
                function(frame)
                times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times)), float(np.percentile(times, 95))

    raw_msgs = [image_codec.array_to_image_msg(frame, 'bgr8', msg=Image()) for frame in frames]
    rows.append({'codec': 'raw bgr8 (message fill / view)',
                 'bytes': len(raw_msgs[0].data),
                 'encode_ms': timed(lambda f: image_codec.array_to_image_msg(f, 'bgr8',
                                                                             msg=Image())),
                 'decode_ms': timed(lambda f: image_codec.msg_to_bgr(raw_msgs[0]))})
    variants = [('jpeg', q) for q in qualities] + [('png', 0)]
    for compression, quality in variants:
        msgs = [image_codec.array_to_compressed_msg(f, compression, quality or 80,
                                                    msg=CompressedImage()) for f in frames]
        index = {id(f): i for i, f in enumerate(frames)}
        rows.append({
            'codec': f'{compression} q{quality}' if quality else compression,
            'bytes': float(np.mean([len(m.data) for m in msgs])),
            'encode_ms': timed(lambda f: image_codec.array_to_compressed_msg(
                f, compression, quality or 80, msg=CompressedImage())),
            'decode_ms': timed(lambda f: image_codec.msg_to_bgr(msgs[index[id(f)]]))})
    return rows


def benchmark_main(args):
    from tools import netns
    from benchmarks.common import load_average, load_frames, resolve_model_path
    from benchmarks.graph_benchmark import fresh_domain_id

    reason = netns.unavailable_reason()
    if reason:
        print(f'multihost benchmark: {reason}')
        return 2
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix='mask_multihost_'))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f'logs in {log_dir}; load average {load_average()}', flush=True)

    frames, source = load_frames(args.images, (640, 480), 40)
    costs = codec_costs(frames, args.codec_qualities) if args.codec_qualities else []
    print(f'\nencode / decode cost per 640x480 frame ({source}; median and p95 ms, one core):')
    print(f'{"codec":<32} {"bytes":>9} {"encode p50/p95":>15} {"decode p50/p95":>15}')
    for row in costs:
        print(f'{row["codec"]:<32} {row["bytes"]:9.0f} '
              f'{row["encode_ms"][0]:7.2f}/{row["encode_ms"][1]:<7.2f} '
              f'{row["decode_ms"][0]:7.2f}/{row["decode_ms"][1]:<7.2f}')

    video = log_dir / 'frames.avi'
    count, source = write_benchmark_video(video, args.rate, args.seconds, args.images)
    print(f'\nvideo: {count} frames at {args.rate:g} Hz ({source})', flush=True)
    model, _ = resolve_model_path()
    detector_params = {'model_path': str(model)}
    runs = []
    plan = ([('local', 'raw', None)] + [('two hosts', t, args.limit) for t in args.transports]
            ) * args.rounds
    for where, transport, limit in plan:
        with netns.HostPair() as hosts:
            if limit:
                hosts.limit_rate(limit)
            load_before = load_average()
            run = run_graph(hosts, video, log_dir, transport=transport,
                            camera_host='b' if where == 'local' else 'a',
                            domain_id=fresh_domain_id(), detector_params=detector_params,
                            camera_params={'fps': float(args.rate),
                                           'jpeg_quality': args.jpeg_quality},
                            timeout=args.seconds * 3 + 60, cpu=True, probe=args.probe)
        summary = summarise(run)
        summary.update({'where': where, 'transport': transport, 'limit': limit or 'none',
                        'load_average': [load_before, load_average()]})
        runs.append(summary)
        print(_row(summary), flush=True)
    print()
    print(_header())
    for summary in runs:
        print(_row(summary))
    local_p95 = max(r['latency_ms'][95] for r in runs if r['where'] == 'local')
    print(f'local p95 (worst round): {local_p95:.1f} ms')
    for summary in runs:
        if summary['where'] == 'local':
            continue
        print(f'{summary["where"]} {summary["transport"]}: delivered '
              f'{100.0 * summary["delivered"] / max(1, summary["published"]):.1f} % of frames, '
              f'p95 {summary["latency_ms"][95] - local_p95:+.1f} ms vs local')
    print(f'load average after {load_average()}')
    if args.json:
        Path(args.json).write_text(json.dumps({'codec': costs, 'runs': runs}, indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0


def _header():
    return (f'{"where":<10} {"transport":<10} {"limit":<7} {"pub":>5} {"pub Hz":>6} '
            f'{"deliv":>5} {"answ":>5} '
            f'{"p50 ms":>7} {"p95 ms":>7} {"p99 ms":>7} {"link kB/s":>9} {"cam CPU%":>8} '
            f'{"det CPU%":>8} load')


def _row(s):
    lat, cpu = s['latency_ms'], s['cpu_percent']
    return (f'{s["where"]:<10} {s["transport"]:<10} {s["limit"]:<7} {s["published"]:5d} '
            f'{s["published_hz"]:6.1f} '
            f'{s["delivered"]:5d} {s["answered"]:5d} {lat[50]:7.1f} {lat[95]:7.1f} '
            f'{lat[99]:7.1f} {s["link_bytes_per_s"] / 1e3:9.1f} '
            f'{cpu.get("camera", float("nan")):8.1f} {cpu.get("detector", float("nan")):8.1f} '
            f'{s["load_average"][0][0] if s["load_average"][0] else "?"}->'
            f'{s["load_average"][1][0] if s["load_average"][1] else "?"}')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command')
    listen = commands.add_parser('listen', help='(internal) the listener process')
    listen.add_argument('--out', required=True)
    listen.add_argument('--images')
    listen.add_argument('--detections')
    listen.add_argument('--probe', choices=('raw', 'compressed'))
    listen.set_defaults(func=listen_main)
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--seconds', type=float, default=20.0, help='video length, s')
    parser.add_argument('--limit', default='20mbit', help="tc rate of the link ('' = none)")
    parser.add_argument('--transports', nargs='+', default=['compressed', 'raw'],
                        choices=('raw', 'compressed'))
    parser.add_argument('--jpeg-quality', type=int, default=60)
    parser.add_argument('--rounds', type=int, default=1, help='repeat local + transports')
    parser.add_argument('--probe', action='store_true',
                        help='transport only: a listener that decodes frames like detector_node '
                             'in its place (latency = capture to decoded on host b)')
    parser.add_argument('--codec-qualities', type=int, nargs='*', default=[60, 80, 95],
                        help='JPEG qualities of the encode/decode table (none: skip it)')
    parser.add_argument('--images', help='folder of images (default: the detection dev set)')
    parser.add_argument('--log-dir')
    parser.add_argument('--json')
    parser.set_defaults(func=benchmark_main)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
