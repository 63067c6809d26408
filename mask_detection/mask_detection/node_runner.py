"""main() of the package's nodes: build, spin, shut down cleanly on SIGINT / SIGTERM."""
import ctypes
import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Longest time between two looks at the stop signals, s.
SPIN_PERIOD_S = 0.1
# After close(), threads that are about to end (a viewer client at its next frame) get this long.
THREAD_GRACE_S = 1.0


class _StopSignals:
    """Python-level SIGINT / SIGTERM handler: the first one stops, later ones are ignored.

    Ctrl-C on ``ros2 launch`` reaches a node twice: the terminal signals the whole process
    group and launch forwards another SIGINT (then SIGTERM if the node is slow to exit).  Only
    while the node is being built or spun does a signal raise KeyboardInterrupt; during the
    clean-up (joining threads, destroying the node) every further signal is ignored, so it can
    finish and the process exits 0 without a traceback.  rclpy's own C-level handlers are not
    installed (SignalHandlerOptions.NO): with them, a second signal during shutdown could
    still reach Python's default action and end the process with -2 (seen on Kilted).
    """

    def __init__(self):
        self.interruptible = True
        self.received = False

    def __call__(self, signum, frame):
        self.received = True
        if self.interruptible:
            self.interruptible = False
            raise KeyboardInterrupt

    def install(self):
        for signum in STOP_SIGNALS:
            signal.signal(signum, self)


def missing_params_files(argv):
    """Return the ``--params-file`` arguments of ``argv`` that are not existing files."""
    return [path for flag, path in zip(argv, argv[1:])
            if flag == '--params-file' and not os.path.isfile(path)]


def _threads_still_running(grace_s):
    """Return the threads other than the main one still alive after up to ``grace_s`` s."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threading.enumerate()
            if thread is not threading.main_thread() and thread.is_alive()]


def _exit_now(exit_code):
    """End the process with ``exit_code`` at once, output flushed, skipping interpreter exit.

    A thread still inside a blocking C++ call (cv2 VideoCapture open / grab on a stalled
    stream, an onnxruntime run) that returns while the interpreter finalizes is ended by
    CPython with pthread_exit; unwinding through the extension's C++ frames calls
    std::terminate and the process aborts (exit code -6, "terminate called without an
    active exception").  rclpy is already shut down here (logs flushed and closed).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        ctypes.CDLL(None).fflush(None)      # C stdio buffers (rcutils console output)
    except (OSError, AttributeError):
        pass
    os._exit(exit_code)


def run_node(name, build, fatal_errors=(), finished=None, close=None, args=None):
    """Build a node with ``build()``, spin it until shutdown and return the exit code.

    ``finished(node)`` ends the spin early (e.g. a video file is over); ``close(node)`` runs
    before the node is destroyed.  An exception of ``fatal_errors`` (an unusable
    configuration) logs one FATAL line and gives exit code 1; after a normal end the node's
    ``exit_code`` attribute, if it has one, is returned.  SIGINT and SIGTERM (one or several)
    end the node cleanly with exit code 0.  A thread that ``close`` could not stop (blocked in a
    camera read or an inference call) is not waited for: the process then ends through
    os._exit once rclpy is shut down, since such a thread aborts a normal interpreter exit.
    Meant as a process's main(), not to be called inside a process that goes on.
    """
    missing = missing_params_files(sys.argv if args is None else args)
    if missing:
        # rcl would only say "Failed to parse global arguments"; the node then exited 0.
        rclpy.logging.get_logger(name).fatal(
            f'cannot start: --params-file {missing[0]}: no such file')
        return 1
    stop_signals = _StopSignals()
    stop_signals.install()
    node = executor = None
    exit_code = 0
    stuck_threads = []
    try:
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except Exception as error:  # noqa: B902 - rclpy's RCLError is not public API
            # Malformed --ros-args (a params file that is not valid YAML, ...).
            rclpy.logging.get_logger(name).fatal(
                f'cannot start: bad ROS arguments: {str(error).split(", at ")[0]}')
            return 1
        node = build()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # Short waits: without rclpy's handlers only Python code sees a signal, so the spin
        # must come back to Python often.
        while rclpy.ok() and not (finished is not None and finished(node)):
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        exit_code = getattr(node, 'exit_code', 0)
    except fatal_errors as error:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {error}')
        exit_code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal landing while the node is built or publishing surfaces as an RCLError
        # ("context is invalid"), and one landing while rclpy converts a received message
        # as pybind11's "Unable to convert call argument": that is shutdown, not a bug.
        if rclpy.ok() and not stop_signals.received:
            raise
    finally:
        stop_signals.interruptible = False
        if executor is not None:
            executor.shutdown()
        if node is not None:
            if close is not None:
                close(node)
            stuck_threads = _threads_still_running(THREAD_GRACE_S)
            if stuck_threads:
                node.get_logger().warning(
                    'exiting without waiting for thread(s) still busy in a blocking call: '
                    + ', '.join(thread.name for thread in stuck_threads))
            node.destroy_node()
        rclpy.try_shutdown()
        # As the interpreter exits, CPython puts every Python-level handler back to the
        # default action (but leaves SIG_IGN): a stop signal landing then, such as launch's
        # second SIGINT after a fast clean-up, would end the process with -2 (seen on Kilted).
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    if stuck_threads:
        _exit_now(exit_code)
    return exit_code
