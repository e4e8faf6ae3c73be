"""pytest-parity: prove, as a pytest run, that a new LLM serving stack is as good as the old one.

PYTEST_DONT_REWRITE: the package holds no test assertions to rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Contract", "ContractError", "__version__", "load_contract"]

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, ContractError, load_contract


def __getattr__(name: str) -> Any:
    # Lazy: the pytest11 entry point imports this package in every pytest run of the environment.
    if name in ("Contract", "ContractError", "load_contract"):
        from pytest_parity import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'pytest_parity' has no attribute {name!r}")
