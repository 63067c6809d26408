"""main() of the package's nodes: build, spin, shut down cleanly on SIGINT / SIGTERM."""
import rclpy
from rclpy.executors import ExternalShutdownException


def run_node(name, build, fatal_errors=(), finished=None, close=None, args=None):
    """Build a node with ``build()``, spin it until shutdown and return the exit code.

    ``finished(node)`` ends the spin early (e.g. a video file is over); ``close(node)`` runs
    before the node is destroyed.  An exception of ``fatal_errors`` (an unusable
    configuration) logs one FATAL line and gives exit code 1; after a normal end the node's
    ``exit_code`` attribute, if it has one, is returned.
    """
    rclpy.init(args=args)
    node = None
    exit_code = 0
    try:
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
        if node is not None:
            if close is not None:
                close(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_code
