"""The validator service's entry point: `chainlab-validator --plan PLAN --name validator-0`."""

from __future__ import annotations

from chainlab.live.node_service import main as run_service


def main() -> None:
    """Run the validator service until SIGTERM."""
    run_service("validator")


if __name__ == "__main__":
    main()
