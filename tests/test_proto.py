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
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-Ichainlab/proto/v1={ROOT / 'proto/chainlab/v1'}",
        f"--python_out={tmp_path}",
        f"--mypy_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        f"--mypy_grpc_out={tmp_path}",
        *map(str, sources),
    ]
    assert protoc.main(args) == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*"))
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "chainlab/proto/v1").glob("*_pb2*"))
    assert generated == committed, "generated files differ from the committed ones: run make proto"
    for source in sources:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            name = f"chainlab/proto/v1/{source.stem}{suffix}"
            assert (tmp_path / name).read_text() == (ROOT / name).read_text(), f"{name} is stale: run make proto"
