"""Helpers shared by the tests, the demo and the benchmarks: ROS 2 node processes, graph client."""
