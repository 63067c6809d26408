"""The end-to-end demo: the built-in video and the runner behind `make demo` / `make live`."""
