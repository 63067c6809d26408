# Entry points for a fresh machine: `make demo` and `make test`.
# ROS_WHEELS=jazzy (default, LTS) or kilted picks the ROS 2 wheels (make setup/test/demo
# ROS_WHEELS=kilted); each has its own .envs/<name>/.  Command-line variables reach the recipes'
# environment, so scripts/setup.sh and scripts/in_env.sh both see the choice.
SHELL := /bin/bash
ENV := scripts/in_env.sh
PYTEST_ARGS ?=

.PHONY: setup build test lint demo live clean

setup build:
	@bash scripts/setup.sh

test: setup
	$(ENV) python -m pytest $(PYTEST_ARGS)

lint: setup
	$(ENV) python -m pytest -m lint $(PYTEST_ARGS)

# make demo [VIDEO=file.mp4] [VIEWER_PORT=8080] [DEMO_ARGS=...]: camera_node + detector_node +
# demo_recorder on the built-in demo video (or VIDEO), outputs in demo_output/, and viewer_node:
# the live view's URL is printed while it runs (python -m demo --help).
VIEWER_PORT ?= 8080
demo: setup
	$(ENV) python -m demo $(if $(VIDEO),--video '$(VIDEO)') --viewer-port $(VIEWER_PORT) $(DEMO_ARGS)

# make live [CAMERA=/dev/video0] [VIEWER_PORT=8080]: the same on a webcam, until Ctrl-C.
CAMERA ?= /dev/video0
live:
	@test -e '$(CAMERA)' || { echo "make live: no camera at $(CAMERA) (see ls /dev/video*;" \
	  "pick one with CAMERA=/dev/videoN, or run make demo on a video file)" >&2; exit 1; }
	@$(MAKE) --no-print-directory setup
	$(ENV) python -m demo --camera '$(CAMERA)' --viewer-port $(VIEWER_PORT) $(DEMO_ARGS)

clean:
	rm -rf .envs .venv build install log demo_output
