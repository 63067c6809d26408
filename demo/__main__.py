"""`python -m demo`: run the demo (see demo/runner.py)."""
import sys

from demo.runner import main

sys.exit(main())
