"""``python -m slaprobe``."""

import sys

from slaprobe.cli import main

sys.exit(main())
