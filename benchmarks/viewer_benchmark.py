"""Live view benchmark: viewer_node's CPU, memory and frame rate to browsers per client count.

    scripts/in_env.sh python -m benchmarks.viewer_benchmark [--clients 0 1 20] [--duration 15]

This process publishes real 640x480 frames (the built-in demo video's) on ``annotated_image``
at ``--rate`` Hz, as detector_node does, to an installed ``viewer_node`` process; then, for each
client count, it opens that many ``/stream.mjpg`` readers (with 20 and more, one of them
stalled: it connects and never reads) and measures, over ``--duration`` s: viewer_node's CPU
(% of one core) and resident memory, the frames per second each reader got, and how long
``/state.json`` takes.  With 0 clients the viewer does not even subscribe to the images.
"""
import argparse
import array
import os
import re
import statistics
import sys
import threading
import time

import numpy as np

from benchmarks.graph_benchmark import CpuMeter, fresh_domain_id, rss_mb
from demo import video as demo_video
from tools.mjpeg_client import get_state, StreamReaders
from tools.ros_graph import GraphClient, NodeProcess

URL_PATTERN = re.compile(r'live view at (http://\S+/) ')
STALLED_FROM = 20       # client counts from this one on include one stalled client


class Publisher:
    """Publish the demo video's frames on annotated_image at a fixed rate (a thread)."""

    def __init__(self, client, rate, frames):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        self.client = client
        self.publisher = client.node.create_publisher(
            Image, 'annotated_image', QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.messages = []
        for frame in frames:
            msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                        step=frame.shape[1] * 3)
            data = array.array('B')
            data.frombytes(np.ascontiguousarray(frame).tobytes())
            msg.data = data
            self.messages.append(msg)
        self.period = 1.0 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        index, next_due = 0, time.monotonic()
        while not self._stop.is_set():
            msg = self.messages[index % len(self.messages)]
            msg.header.stamp = self.client.node.get_clock().now().to_msg()
            self.publisher.publish(msg)
            index += 1
            next_due += self.period
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(5.0)


def measure(url, port, pid, clients, duration, warmup):
    """Return the measurements for ``clients`` stream readers (one stalled from 20 on)."""
    stalled = clients >= STALLED_FROM
    readers = StreamReaders(port, clients - int(stalled), stalled=int(stalled))
    time.sleep(warmup)
    meter = CpuMeter(pid)
    rss_start = rss_mb(pid)
    meter.start()
    readers.reset_counts()
    started = time.monotonic()
    state_ms = []
    while time.monotonic() - started < duration:
        before = time.monotonic()
        state = get_state(url)
        state_ms.append((time.monotonic() - before) * 1000.0)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    counts = list(readers.counts)
    cpu = meter.stop()
    rss_end = rss_mb(pid)
    readers.close(reset=True)
    rates = [count / elapsed for count in counts]
    return {'clients': clients, 'stalled': int(stalled), 'cpu_percent': cpu,
            'rss_mb_start': rss_start, 'rss_mb_end': rss_end,
            'fps_min': min(rates) if rates else None,
            'fps_median': statistics.median(rates) if rates else None,
            'images_hz': state['images']['rate_hz'], 'stream_fps': state['stream']['fps'],
            'state_ms_max': max(state_ms), 'clients_dropped': state['stream']['clients_dropped']}


def run(args):
    spec = demo_video.VideoSpec(duration_s=4.0, fps=15.0)
    frames = [frame for frame, _ in demo_video.render_frames(spec)]
    domain = fresh_domain_id()
    log_dir = args.log_dir
    os.makedirs(log_dir, exist_ok=True)
    print(f'[viewer benchmark] ROS_DOMAIN_ID={domain}; {len(frames)} frames 640x480 at '
          f'{args.rate:g} Hz; max_fps {args.max_fps:g}; load average '
          f'{" ".join(f"{x:.2f}" for x in os.getloadavg())}; logs in {log_dir}')
    results = []
    with GraphClient(domain, name='viewer_benchmark') as client, \
            NodeProcess('viewer_node', domain, log_dir, log_name='viewer_node.log', params={
                'port': 0, 'max_fps': args.max_fps,
                'max_clients': max(args.clients) + 1}) as viewer:
        if not viewer.wait_for_log(URL_PATTERN.pattern, 30.0):
            print(f'viewer_node did not start:\n{viewer.log_tail()}', file=sys.stderr)
            return 1
        url = URL_PATTERN.search(viewer.log()).group(1)
        port = int(url.rsplit(':', 1)[1].strip('/'))
        publisher = Publisher(client, args.rate, frames)
        publisher.start()
        try:
            for clients in args.clients:
                results.append(measure(url, port, viewer.process.pid, clients, args.duration,
                                       args.warmup))
                print(f'  measured {clients} client(s)', flush=True)
        finally:
            publisher.stop()
    print(f'\n  {"clients":>11} {"CPU %":>6} {"RSS MB":>14} {"fps/reader min/med":>19} '
          f'{"images Hz":>9} {"state.json max":>14} {"dropped":>7}')
    for r in results:
        clients = f'{r["clients"]}' + (' (1 stall)' if r['stalled'] else '')
        fps = ('n/a' if r['fps_min'] is None
               else f'{r["fps_min"]:.1f} / {r["fps_median"]:.1f}')
        print(f'  {clients:>11} {r["cpu_percent"]:6.1f} '
              f'{r["rss_mb_start"]:6.1f} -> {r["rss_mb_end"]:5.1f} {fps:>19} '
              f'{r["images_hz"]:9.1f} {r["state_ms_max"]:11.0f} ms {r["clients_dropped"]:7d}')
    by_count = {r['clients']: r for r in results}
    if 1 in by_count and max(by_count) > 1 and by_count[1]['cpu_percent']:
        top = by_count[max(by_count)]
        print(f'\n  CPU with {top["clients"]} clients / with 1 client: '
              f'{top["cpu_percent"] / by_count[1]["cpu_percent"]:.2f}x (JPEG encoded once for '
              f'all; a per-client encoder would scale with the clients)')
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--clients', type=int, nargs='+', default=[0, 1, 20])
    parser.add_argument('--rate', type=float, default=30.0, help='images per second published')
    parser.add_argument('--max-fps', type=float, default=15.0, help="viewer_node's max_fps")
    parser.add_argument('--duration', type=float, default=15.0, help='seconds per measurement')
    parser.add_argument('--warmup', type=float, default=3.0)
    parser.add_argument('--log-dir', default='/tmp/viewer_benchmark')
    args = parser.parse_args(argv)
    if min(args.clients) < 0:
        parser.error('--clients must be >= 0')
    return args


def main(argv=None):
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
