"""A stand-in service for runtime tests: prints its arguments and state directory, then sleeps until killed."""

from __future__ import annotations

import os
import sys
import time

if __name__ == "__main__":
    print(f"started {sys.argv[1:]} state={os.environ.get('CHAINLAB_STATE_DIR', '')}", flush=True)
    time.sleep(120)
