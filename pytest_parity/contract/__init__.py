"""The parity contract: YAML in (:mod:`.spec` loading, :mod:`.rules` validation), a frozen,
validated specification out. Everything downstream reads only the frozen spec."""

from __future__ import annotations

from pytest_parity.contract.spec import (
    Contract,
    ContractError,
    Defaults,
    EndpointSpec,
    TaskSpec,
    contract_from_data,
    load_contract,
    thaw,
)

__all__ = [
    "Contract",
    "ContractError",
    "Defaults",
    "EndpointSpec",
    "TaskSpec",
    "contract_from_data",
    "load_contract",
    "thaw",
]
