"""managed_detector_node: detector_node as a ROS 2 managed (lifecycle) node.

Same parameters, topics and behaviour as detector_node (both run `DetectorCore`); only when
things happen differs:

    unconfigured --configure--> inactive   parameters validated, models loaded, publishers
                                           (a bad configuration fails the transition, the
                                           reason is logged, the node stays unconfigured)
    inactive     --activate---> active     image subscription, worker thread: processing
    active       --deactivate-> inactive   no image subscription, no worker: ~zero CPU
    inactive     --cleanup----> unconfigured  publishers gone, models released

    ros2 lifecycle set /detector_node configure   (then activate, deactivate, cleanup)
"""
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from mask_detection.detector_node import ConfigurationError, DetectorCore
from mask_detection.node_runner import run_node


class ManagedDetectorNode(LifecycleNode):
    """The detector as a lifecycle node; the node name is detector_node, as for the other."""

    def __init__(self, **kwargs):
        super().__init__('detector_node', **kwargs)
        self.core = DetectorCore(self)       # declares the parameters; nothing is loaded yet

    def on_configure(self, state):
        try:
            self.core.configure()
        except ConfigurationError as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # noqa: B902 - rclpy would turn it into ERROR, unlogged
            self.get_logger().error(f'configure failed: {type(error).__name__}: {error}')
            self.core.cleanup()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info('configured: models loaded, publishers created')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        try:
            self.core.activate()
        except Exception as error:  # noqa: B902 - rclpy would turn it into ERROR, unlogged
            self.get_logger().error(f'activate failed: {type(error).__name__}: {error}')
            self.core.deactivate()
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def on_deactivate(self, state):
        self.core.deactivate()
        self.get_logger().info('deactivated: image subscription removed, not processing')
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self.core.cleanup()
        self.get_logger().info('cleaned up: models released, publishers removed')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state):
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def stop(self, timeout=5.0):
        """Stop the worker thread (it finishes the frame in hand)."""
        self.core.stop(timeout)


def main(args=None):
    """Run managed_detector_node (unconfigured until told) until SIGINT/SIGTERM."""
    return run_node('detector_node', ManagedDetectorNode, (ParameterException,),
                    close=lambda node: node.stop(), args=args)


if __name__ == '__main__':
    raise SystemExit(main())
