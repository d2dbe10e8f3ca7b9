"""The committed generated code matches proto/chainlab/v1: `make proto` leaves no drift."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    sources = sorted((ROOT / "proto/chainlab/v1").glob("*.proto"))
    assert sources
    # The mypy plugin sits beside this interpreter, which need not be on PATH (make runs .venv/bin/pytest).
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"-Ichainlab/proto/v1={ROOT / 'proto/chainlab/v1'}",
        f"--python_out={tmp_path}",
        f"--mypy_out={tmp_path}",
        *map(str, sources),
    ]
    assert protoc.main(args) == 0
    for source in sources:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            name = f"chainlab/proto/v1/{source.stem}{suffix}"
            assert (tmp_path / name).read_text() == (ROOT / name).read_text(), f"{name} is stale: run make proto"
