"""The miner service's entry point: `chainlab-miner --plan PLAN --name miner-0`."""

from __future__ import annotations

from chainlab.live.node_service import main as run_service


def main() -> None:
    """Run the miner service until SIGTERM."""
    run_service("miner")


if __name__ == "__main__":
    main()
