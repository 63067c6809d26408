"""Real-time face mask detection; the modules below the nodes import no rclpy."""
