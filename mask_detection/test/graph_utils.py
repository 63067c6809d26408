"""Helpers for graph tests: node processes, a test-side rclpy node, test videos.

    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections')
        with NodeProcess('detector_node', domain, tmp_path, params={'model_path': model},
                         remaps={'image': 'camera/image_raw'}) as detector:
            assert client.spin_until(lambda: arrays, timeout=20), detector.log()

NodeProcess and GraphClient live in tools/ros_graph.py (the demo and the benchmarks use
them too); node processes are the installed console scripts, so run ``make setup`` after
changing the package.
"""
from pathlib import Path

import cv2

from tools.ros_graph import (  # noqa: F401 - re-exported for the tests
    console_script, GraphClient, INSTALL_LIB, node_environment, NodeProcess, REPO_ROOT, ros_args)


def write_video(path, frame_bgr, count, fps=30.0, codec='FFV1'):
    """Write ``count`` copies of a BGR frame as an .avi video; return the path.

    FFV1 is lossless, so every decoded frame equals ``frame_bgr`` (OpenCV's MJPG encoder
    does not even give the same pixels for identical frames).
    """
    return write_frames(path, [frame_bgr] * count, fps, codec)


def write_frames(path, frames_bgr, fps=30.0, codec='FFV1'):
    """Write BGR frames of one size as an .avi video, in order; return the path."""
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write {codec} video {path}')
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return Path(path)


def first_video_frame(path):
    """Return the first decoded frame of a video file (what camera_node publishes)."""
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f'cannot read a frame from {path}')
    return frame
