"""Train(.; f): a model family and its hyper-parameters, as every protocol names them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from chainlab.ledger.encoding import EncodingError
from chainlab.proto.v1 import bagchain_pb2 as pb


@dataclass(frozen=True)
class ModelSpec:
    """A model family and its hyper-parameters as canonical JSON."""

    PROTO: ClassVar = pb.ModelSpec
    family: str
    params_json: str = "{}"

    @classmethod
    def of(cls, family: str, params: Mapping[str, Any]) -> ModelSpec:
        """Build from a mapping; keys are sorted so equal specs hash equally."""
        return cls(family, json.dumps(dict(params), sort_keys=True, separators=(",", ":")))

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters as a dict."""
        value = json.loads(self.params_json)
        if not isinstance(value, dict):
            raise EncodingError("model params must be a JSON object")
        return value
