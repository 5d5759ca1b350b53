"""``python -m converter``: the same program as ``embconv``."""

import sys

from .cli import main

sys.exit(main())
