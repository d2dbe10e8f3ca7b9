"""The requester service's entry point: `chainlab-requester --plan PLAN --name requester-0`."""

from __future__ import annotations

from chainlab.live.node_service import main as run_service


def main() -> None:
    """Run the requester service until SIGTERM."""
    run_service("requester")


if __name__ == "__main__":
    main()
