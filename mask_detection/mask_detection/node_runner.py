"""main() of the package's nodes: build, spin, shut down cleanly on SIGINT / SIGTERM."""
import signal

import rclpy
from rclpy.executors import ExternalShutdownException

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopSignals:
    """Python-level SIGINT / SIGTERM handler: the first one stops, later ones are ignored.

    Ctrl-C on ``ros2 launch`` reaches a node twice: the terminal signals the whole process
    group and launch forwards another SIGINT (then SIGTERM if the node is slow to exit).  Only
    while the node is being built or spun does a signal raise KeyboardInterrupt; during the
    clean-up (joining threads, destroying the node) every further signal is ignored, so it can
    finish and the process exits 0 without a traceback.  rclpy's own handler, installed by
    rclpy.init() on top of this one, shuts the context down and then calls this one.
    """

    def __init__(self):
        self.interruptible = True

    def __call__(self, signum, frame):
        if self.interruptible:
            self.interruptible = False
            raise KeyboardInterrupt

    def install(self):
        for signum in STOP_SIGNALS:
            signal.signal(signum, self)


def run_node(name, build, fatal_errors=(), finished=None, close=None, args=None):
    """Build a node with ``build()``, spin it until shutdown and return the exit code.

    ``finished(node)`` ends the spin early (e.g. a video file is over); ``close(node)`` runs
    before the node is destroyed.  An exception of ``fatal_errors`` (an unusable
    configuration) logs one FATAL line and gives exit code 1; after a normal end the node's
    ``exit_code`` attribute, if it has one, is returned.  SIGINT and SIGTERM (one or several)
    end the node cleanly with exit code 0.
    """
    stop_signals = _StopSignals()
    stop_signals.install()
    node = None
    exit_code = 0
    try:
        rclpy.init(args=args)
        node = build()
        if finished is None:
            rclpy.spin(node)
        else:
            while rclpy.ok() and not finished(node):
                rclpy.spin_once(node, timeout_sec=0.1)
        exit_code = getattr(node, 'exit_code', 0)
    except fatal_errors as error:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {error}')
        exit_code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal landing while the node is built or publishing surfaces as an RCLError
        # ("context is invalid"): that is shutdown, not a bug.
        if rclpy.ok():
            raise
    finally:
        stop_signals.interruptible = False
        if node is not None:
            if close is not None:
                close(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_code
