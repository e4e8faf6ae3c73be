"""``parity-shadow CONTRACT`` (or ``python -m pytest_parity.shadow CONTRACT``): run the proxy.

Exit codes: 0 after a clean shutdown (SIGTERM / SIGINT), 4 for a bad contract or a store that
cannot be opened (one line on stderr, as for the plugin), 1 when the port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parity-shadow",
        description="Tee proxy: answers from the serving stack, a sampled copy to the shadow "
        "stack, pairs stored, Prometheus metrics on /metrics.",
    )
    p.add_argument("contract", help="the parity contract with a shadow: block")
    p.add_argument("--listen", help="override shadow.listen, e.g. 127.0.0.1:0 (any free port)")
    p.add_argument("--store", help="override shadow.store.url (sqlite path or postgresql://...)")
    p.add_argument("--sample-rate", type=float, help="override shadow.sample_rate")
    p.add_argument("--instance", help="override shadow.instance (this proxy's name in the store)")
    p.add_argument("--check", action="store_true", help="validate the contract and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="parity-shadow: %(levelname)s %(message)s",
    )
    from pathlib import Path

    from pytest_parity.contract.spec import ContractError, read_contract_yaml
    from pytest_parity.shadow.config import load_shadow_config, shadow_config_from_data

    try:
        cfg = load_shadow_config(args.contract)
        if args.listen or args.store or args.sample_rate is not None or args.instance:
            # Re-validate the overrides with the contract's own rules (same one-line errors).
            raw, _ = read_contract_yaml(args.contract, option="contract")
            block = dict(raw["shadow"] or {})
            if args.listen:
                block["listen"] = args.listen
            if args.store:
                st = block.get("store")
                block["store"] = {**(st if isinstance(st, dict) else {}), "url": args.store}
            if args.sample_rate is not None:
                block["sample_rate"] = args.sample_rate
            if args.instance:
                block["instance"] = args.instance
            if args.store and not args.store.startswith(("postgres", "sqlite://", "/")):
                block["store"]["url"] = str(Path(args.store).resolve())
            cfg = shadow_config_from_data({**raw, "shadow": block}, Path(args.contract))
    except ContractError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    if args.check:
        print(f"parity-shadow: {args.contract}: OK", flush=True)
        return 0
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print(
            "ERROR: parity-shadow needs prometheus_client: pip install 'pytest-parity[shadow]'",
            file=sys.stderr,
        )
        return 4
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_serve(cfg))
    return uvloop.run(_serve(cfg))


async def _serve(cfg: object) -> int:
    from pytest_parity.shadow.config import ShadowConfig
    from pytest_parity.shadow.proxy import ShadowProxy

    assert isinstance(cfg, ShadowConfig)
    proxy = ShadowProxy(cfg)
    try:
        await proxy.start()
    except OSError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else repr(exc)
        # A store that cannot be opened is a configuration problem (4); a busy port is not (1).
        code = 1 if "address" in msg.lower() or getattr(exc, "errno", None) == 98 else 4
        print(f"ERROR: {cfg.path}: {msg}", file=sys.stderr)
        await proxy.stop()
        return code
    except Exception as exc:
        line = str(exc).splitlines()[0] if str(exc) else repr(exc)
        print(f"ERROR: {cfg.path}: shadow.store: cannot open the store: {line}", file=sys.stderr)
        return 4
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = f"http://{cfg.host}:{proxy.port}"
    metrics = (
        f"http://{cfg.metrics_host}:{proxy.metrics_port}{cfg.metrics_path}"
        if proxy.metrics_port is not None
        else where + cfg.metrics_path
    )
    print(
        f"parity-shadow: listening on {where} serving={cfg.serving_name} "
        f"({cfg.serving.base_url}) shadow={cfg.shadow_name} ({cfg.shadow.base_url}) "
        f"sample_rate={cfg.sample_rate:g} metrics={metrics}",
        flush=True,
    )
    await stop.wait()
    await proxy.stop()
    reg = proxy.metrics.registry
    dropped = sum(
        s.value
        for fam in reg.collect()
        if fam.name == "parity_shadow_dropped"
        for s in fam.samples
        if s.name.endswith("_total") and s.labels.get("reason") == "shutdown"
    )
    # Whoever read our stdout may be gone by now: a clean stop stays a clean stop.
    with contextlib.suppress(OSError):
        print(
            f"parity-shadow: stopped; pairs stored: {proxy.writer.written}, "
            f"shadow requests dropped at shutdown: {dropped:.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
