"""A small HTTP / MJPEG client of the live view (viewer_node), for its tests and benchmark.

Raw sockets, so that a client can also stall on purpose (connect, then never read).
"""
import json
import socket
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np


def get(url, timeout=10.0):
    """Return (status, headers dict, body bytes) of a GET; HTTP errors are returned too."""
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_state(base_url, timeout=10.0):
    status, _, body = get(base_url + 'state.json', timeout)
    if status != 200:
        raise ConnectionError(f'state.json: HTTP {status}: {body[:200]!r}')
    return json.loads(body)


class MjpegClient:
    """Read ``/stream.mjpg`` part by part; ``stall=True`` connects and then never reads."""

    def __init__(self, port, host='127.0.0.1', timeout=10.0, receive_buffer=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            # A small kernel buffer makes a stalled reader block the server's writes sooner.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.sendall(f'GET /stream.mjpg HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n'.encode())
        self.file = self.sock.makefile('rb')
        self.status = None
        self.headers = {}
        self.boundary = None

    def read_headers(self):
        status_line = self.file.readline().decode('latin-1')
        self.status = int(status_line.split()[1])
        while True:
            line = self.file.readline().decode('latin-1').strip()
            if not line:
                break
            name, _, value = line.partition(':')
            self.headers[name.strip().lower()] = value.strip()
        content_type = self.headers.get('content-type', '')
        if 'boundary=' in content_type:
            self.boundary = content_type.split('boundary=', 1)[1].strip()
        return self.status

    def read_jpeg(self):
        """Return the next part's JPEG bytes (raises on a malformed part or a closed stream)."""
        if self.status is None:
            self.read_headers()
        line = self.file.readline()
        while line in (b'\r\n', b'\n'):
            line = self.file.readline()
        if not line:
            raise ConnectionError('stream closed')
        if line.strip() != f'--{self.boundary}'.encode():
            raise ValueError(f'expected the boundary --{self.boundary}, got {line[:80]!r}')
        headers = {}
        while True:
            line = self.file.readline().decode('latin-1').strip()
            if not line:
                break
            name, _, value = line.partition(':')
            headers[name.strip().lower()] = value.strip()
        if headers.get('content-type') != 'image/jpeg':
            raise ValueError(f'part is not a JPEG: {headers}')
        data = self.file.read(int(headers['content-length']))
        if data[:2] != b'\xff\xd8' or data[-2:] != b'\xff\xd9':
            raise ValueError('part is not a whole JPEG')
        return data

    def read_frame(self):
        """Return the next part decoded as a BGR array."""
        return decode_jpeg(self.read_jpeg())

    def close(self, reset=False):
        """Close; ``reset=True`` aborts the connection (RST) like a killed browser."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 (1).to_bytes(4, 'little') + (0).to_bytes(4, 'little'))
        try:
            self.file.close()
        finally:
            self.sock.close()


def decode_jpeg(data):
    """Return a JPEG's pixels (BGR); ValueError if it does not decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError('JPEG does not decode')
    return image


class StreamReaders:
    """Clients reading ``/stream.mjpg`` in threads and counting frames, and stalled ones.

    ``stalled`` clients connect and never read (with a small receive buffer: they stall soon).
    """

    def __init__(self, port, count, stalled=0, host='127.0.0.1'):
        self.readers = [MjpegClient(port, host) for _ in range(count)]
        self.stalled = [MjpegClient(port, host, receive_buffer=4096) for _ in range(stalled)]
        self.counts = [0] * count
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(index,), daemon=True)
                         for index in range(count)]
        for thread in self._threads:
            thread.start()

    def _read(self, index):
        try:
            while not self._stop.is_set():
                self.readers[index].read_jpeg()
                self.counts[index] += 1
        except (OSError, ValueError):
            pass    # closed by close(), or by the server

    def reset_counts(self):
        self.counts = [0] * len(self.readers)

    def close(self, reset=True):
        """Stop reading and disconnect (``reset``: abruptly, like a killed browser)."""
        self._stop.set()
        for client in self.readers:
            client.close(reset=reset)
        for thread in self._threads:
            thread.join(5.0)
        for client in self.stalled:
            client.close()
