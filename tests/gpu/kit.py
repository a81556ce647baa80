"""The GPU kit: what a run on a lent H100/H200 needs and its image lacks (docs/facts.md §5), in one
folder of at most 60 MiB that installs with no package index: fimls and the packages missing there
as wheels for the machine's CPython and x86-64 Linux, pypcre as source (built there, with a wheel
built here as the fallback), the small test model, the CUDA tests, this script and `run.sh`.

Which packages: the closure of fimls' runtime requirements (this checkout's pyproject.toml, extras
left out), at the versions installed beside this fimls (so the ones tested here), less what the
image has. Carried although the image has them: transformers and what it pins (gptqmodel 7.7
needs transformers 5.20.2 or newer; the image has 5.17), and pydantic (docs/facts.md §5 is not sure
the image has it). Left out: what gptqmodel declares for quantizing, evaluation or serving but does
not import to load and run a GPTQ checkpoint; `run.sh` proves that on every run by importing the
inference path.

It is test support, not part of fimls, and runs as a script from a checkout:

    python tests/gpu/kit.py prepare          # the README's test set-up
    python tests/gpu/kit.py build DIR [--python 3.12] [--wheelhouse W] [--offline]

`prepare` fills the wheel cache for both Pythons from the package registry and makes the stand-in
for the image on this machine: a virtual environment with only the image's packages. Both are kept
in fimls' cache; the kit is then built from it offline (`--offline`: nothing is fetched, a missing
wheel is an error). On the GPU machine fimls comes from the kit's wheel, which does not hold this
script: the kit carries its own copy, and `run.sh` runs its `verify` and `warm-kernels` from there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from fimls import __version__
from fimls.testmodel import cache_root, ensure_test_model

MOST_BYTES = 60 * 2**20
# docs/facts.md §5: the GPU image's Python packages (pip brought what they need along).
IMAGE_HAS = (
    "torch", "triton", "transformers", "tokenizers", "safetensors", "accelerate", "numpy", "pytest", "hypothesis",
    "pathspec", "psutil",
)
# Carried with what they need, whatever the image has: transformers and what it pins (gptqmodel 7.7
# needs transformers >= 5.20.2; the image has 5.17, whose huggingface-hub, accelerate, safetensors
# and regex may be older than this transformers takes), and pydantic.
CARRIED_OVER_THE_IMAGE = (
    "transformers", "huggingface-hub", "tokenizers", "accelerate", "safetensors", "regex", "pydantic",
)
# What any image with torch and pytest has, and nothing above needs newer than it has.
BASE = ("torch", "numpy", "pytest", "hypothesis", "psutil", "pathspec", "pyyaml", "tqdm", "packaging")
# Declared by gptqmodel (quantization datasets, evaluation, its own build) or by huggingface-hub for
# downloads (hf-xet; the run is offline); nothing on the path that loads and runs a local
# checkpoint imports them. (pillow and requests stay: `import gptqmodel` imports every model
# definition, the vision ones among them.)
NOT_ON_THE_INFERENCE_PATH = (
    "datasets", "dill", "multiprocess", "pandas", "pyarrow", "python-dateutil", "tzdata", "xxhash", "maturin", "protobuf",
    "torchao", "ninja", "hf-xet",
)
KIT_SCRIPT = "kit.py"  # the name run.sh calls it by, at the kit's top
BUILT_THERE = "pypcre"  # a C extension against the machine's Python; no wheel on PyPI
# How the image stands in here: the same packages, CPU builds (torch 2.13.0 is on this disk; the
# image's 2.11 would be a download of several GB), its transformers as docs/facts.md §5 saw it.
IMAGE_STAND_IN = (
    "torch==2.13.0", "transformers==5.17.0", "tokenizers", "safetensors", "accelerate", "numpy", "pytest", "hypothesis",
    "pathspec", "psutil", "setuptools",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
IMPORTS = (
    "fimls.lsp.server", "fimls.engine.model.engine", "fimls.engine.daemon.service", "fimls.context.builder", "gptqmodel", "optimum.gptq",
    "pygls", "lsprotocol", "watchdog.observers", "tree_sitter_python", "aiohttp", "httpx", "pcre",
)


def _norm(name: str) -> str:
    return canonicalize_name(name)


def _closure(names) -> dict[str, str]:
    """Every distribution `names` need, installed here, with its version."""
    found: dict[str, str] = {}
    todo = [_norm(name) for name in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_norm(requirement.name))
    return found


def requirements(root: Path) -> list[str]:
    """fimls' runtime requirements as the checkout declares them: the wheel the kit carries is built
    from it, and an editable install's metadata is as old as its last `pip install`."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(text).name for text in project["dependencies"]]


def carried(root: Path | None = None) -> dict[str, str]:
    """The packages the kit holds besides fimls, name → version."""
    ours = _closure(requirements(root or source_root()))
    image = set(_closure(IMAGE_HAS)) - (set(_closure(CARRIED_OVER_THE_IMAGE)) - set(_closure(BASE)))
    skipped = {_norm(name) for name in NOT_ON_THE_INFERENCE_PATH}
    return {name: version for name, version in sorted(ours.items()) if name not in image and name not in skipped}


def _target_tags(python: str):
    version = tuple(int(part) for part in python.split("."))
    interpreter = f"cp{version[0]}{version[1]}"
    platforms = [*PLATFORMS, *(f"manylinux_2_{minor}_x86_64" for minor in range(18, 36)), "linux_x86_64"]
    return {
        *tags.cpython_tags(version, abis=[interpreter, "abi3", "none"], platforms=platforms),
        *tags.compatible_tags(version, interpreter, platforms),
    }


def fits(wheel: Path, python: str) -> bool:
    return bool(parse_wheel_filename(wheel.name)[3] & _target_tags(python))


def _cached(wheelhouse: Path, name: str, version: str, python: str) -> Path | None:
    for wheel in sorted(wheelhouse.glob("*.whl")):
        wheel_name, wheel_version, _build, _tags = parse_wheel_filename(wheel.name)
        if wheel_name == name and str(wheel_version) == version and fits(wheel, python):
            return wheel
    return None


def _pip(python_exe: str, *args: str, cwd: Path | None = None, env: dict | None = None) -> None:
    result = subprocess.run([python_exe, "-m", "pip", *args], capture_output=True, text=True, cwd=cwd, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args[:3])} ... failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}")


class NotCached(RuntimeError):
    pass


def fetch(wheelhouse: Path, python: str, name: str, version: str, offline: bool = False) -> Path:
    """A wheel of `name==version` for `python` on x86-64 Linux, from the cache or the registry: the
    registry's binary wheel, else one built here from its source (the pure-Python packages that
    publish only source)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    found = _cached(wheelhouse, name, version, python)
    if found is not None:
        return found
    if offline:
        raise NotCached(f"{name} {version} for CPython {python} is not in {wheelhouse}; run python tests/gpu/kit.py prepare")
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    try:
        _pip(sys.executable, "download", "--no-deps", "--only-binary", ":all:", "--python-version", python,
             "--implementation", "cp", *platforms, "-d", str(wheelhouse), f"{name}=={version}")
    except RuntimeError:
        _pip(sys.executable, "wheel", "--no-deps", "-w", str(wheelhouse), f"{name}=={version}")
    found = _cached(wheelhouse, name, version, python)
    if found is None:
        raise RuntimeError(f"no wheel of {name} {version} fits CPython {python} on x86-64 Linux")
    return found


def _interpreter(python: str) -> str | None:
    """This machine's CPython `python`, if there is one (pyenv's, say): builds pypcre's fallback."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{python}"), *sorted(str(p) for p in pyenv.glob(f"{python}.*/bin/python{python}"))]
    for candidate in filter(None, candidates):
        # A pyenv shim is on PATH for every version but runs only the selected ones: ask it.
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == python:
            return candidate
    return None


def fetch_pypcre(wheelhouse: Path, python: str, version: str, offline: bool = False) -> tuple[Path, Path | None]:
    """pypcre's source, and a wheel built from it here for `python` where this machine has that
    Python (generic CPU flags, so that it runs on another x86-64 machine)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    source = next(iter(sorted(wheelhouse.glob(f"pypcre-{version}.tar.gz"))), None)
    if source is None and offline:
        raise NotCached(f"pypcre {version}'s source is not in {wheelhouse}; run python tests/gpu/kit.py prepare")
    if source is None:
        _pip(sys.executable, "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation", "-d",
             str(wheelhouse), f"pypcre=={version}")
        source = wheelhouse / f"pypcre-{version}.tar.gz"
    built = _cached(wheelhouse, "pypcre", version, python)
    if built is None and not offline and (interpreter := _interpreter(python)) is not None:
        env = {**os.environ, "PYPCRE_DISABLE_NATIVE_FLAGS": "1"}
        _pip(interpreter, "wheel", "--no-deps", "-w", str(wheelhouse), str(source), env=env)
        built = _cached(wheelhouse, "pypcre", version, python)
    return source, built


def source_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "fimls").is_dir():
        raise RuntimeError(f"the kit is built from a fimls checkout, and {root} is not one: run tests/gpu/kit.py from one")
    return root


def _ignore_below(folder: Path, *patterns: str):
    """copytree's `ignore`: `patterns`, and `folder` itself wherever the copy meets it (a kit written
    inside the tree it copies would otherwise copy itself)."""
    by_pattern = shutil.ignore_patterns(*patterns)
    folder = folder.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(by_pattern(directory, names))
        if Path(directory).resolve() == folder.parent and folder.name in names:
            ignored.add(folder.name)
        return ignored

    return ignore


def _test_model(destination: Path) -> None:
    """The quantized test model without its dense twin: the GPU run needs no training or quantizing."""
    model = ensure_test_model()
    shutil.copytree(model, destination, ignore=shutil.ignore_patterns("dense", ".*"))


def build(directory: Path, python: str = "3.12", wheelhouse: Path | None = None, offline: bool = False) -> dict:
    """Write the kit into `directory` (an earlier kit there is replaced); the manifest says what it holds."""
    root = source_root()
    wheelhouse = wheelhouse or default_wheelhouse()
    if directory.exists() and any(directory.iterdir()) and not (directory / "manifest.json").is_file():
        raise RuntimeError(f"{directory} holds something other than a kit: name an empty or new folder")
    if directory.exists():
        shutil.rmtree(directory)
    wheels = directory / "wheels"
    wheels.mkdir(parents=True)
    packages = carried(root)
    manifest: dict = {"python": python, "packages": {}, "left_out": list(NOT_ON_THE_INFERENCE_PATH)}
    for name, version in packages.items():
        if name == BUILT_THERE:
            continue
        wheel = fetch(wheelhouse, python, name, version, offline)
        shutil.copy2(wheel, wheels / wheel.name)
        manifest["packages"][name] = version
    source, fallback = fetch_pypcre(wheelhouse, python, packages[BUILT_THERE], offline)
    (directory / "source").mkdir()
    shutil.copy2(source, directory / "source" / source.name)
    manifest["packages"][BUILT_THERE] = f"{packages[BUILT_THERE]} (source, built there)"
    if fallback is not None:
        (directory / "fallback").mkdir()
        shutil.copy2(fallback, directory / "fallback" / fallback.name)
    manifest["pypcre_fallback_wheel"] = fallback.name if fallback is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        # Built from a copy of the source tree (this checkout, uncommitted changes included), so
        # that setuptools' build folder is not left in the checkout.
        source = Path(scratch) / "fimls"
        shutil.copytree(root, source, ignore=_ignore_below(directory, ".git", ".venv", "node_modules", "build", "*.egg-info", "__pycache__"))
        _pip(sys.executable, "wheel", "--no-deps", "--no-build-isolation", "-w", scratch, str(source))
        ours = next(Path(scratch).glob("fimls-*.whl"))
        shutil.copy2(ours, wheels / ours.name)
    _test_model(directory / "model")
    copy_tests_and_scripts(root, directory)
    manifest["bytes"] = size(directory)  # without the manifest's own few kilobytes
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if (total := size(directory)) > MOST_BYTES:
        raise RuntimeError(f"the kit is {total / 2**20:.1f} MiB, over its {MOST_BYTES // 2**20} MiB")
    return manifest


def copy_tests_and_scripts(root: Path, directory: Path) -> None:
    """The CUDA tests into `directory`/tests/gpu, this script and run.sh into `directory` itself: run.sh
    calls the script there, and the tests' folder does not hold them a second time."""
    here = Path(__file__).resolve()
    tests = directory / "tests" / "gpu"
    ignore = _ignore_below(directory, "__pycache__", here.name, "kit_run.sh")
    shutil.copytree(root / "tests" / "gpu", tests, ignore=ignore, dirs_exist_ok=True)
    # The suite's one LSP client, beside the tests that import it there.
    shutil.copy2(root / "tests" / "lsp_client.py", tests / "lsp_client.py")
    (tests / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    shutil.copy2(here, directory / KIT_SCRIPT)
    run = directory / "run.sh"
    shutil.copy2(here.with_name("kit_run.sh"), run)
    run.chmod(0o755)


def size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def default_wheelhouse() -> Path:
    return cache_root() / "gpu-kit-wheels"


def default_stand_in() -> Path:
    return cache_root() / f"gpu-image-stand-in-py{sys.version_info.major}{sys.version_info.minor}"


def make_image_stand_in(venv: Path | None = None) -> Path:
    """A virtual environment with the GPU image's packages and nothing else (made once)."""
    venv = venv or default_stand_in()
    python = venv / "bin" / "python"
    stamp = venv / "fimls-image-stand-in.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == list(IMAGE_STAND_IN):
        return python
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(str(python), "install", "--quiet", *IMAGE_STAND_IN)
    stamp.write_text(json.dumps(list(IMAGE_STAND_IN)))
    return python


def verify() -> int:
    """What `run.sh` runs after installing: the inference path imports, and the versions in use."""
    # Here, not at the top: building the kit needs neither, and importing them is what is verified.
    import torch
    import transformers

    for module in IMPORTS:
        importlib.import_module(module)
    print(json.dumps({
        "fimls": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/gpu/kit.py", description="the folder that runs fimls' CUDA checks on a GPU machine with no package index")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="fill the wheel cache for both Pythons; make the image's stand-in")
    prepare.add_argument("--image-venv", type=Path, default=None, help="where to make the image's stand-in (default: in fimls' cache)")
    prepare.add_argument("--python", action="append", default=None, help="target CPython versions (default 3.11 and 3.12)")
    kit = commands.add_parser("build", help="write the kit into DIRECTORY (an earlier kit there is replaced)")
    kit.add_argument("directory", type=Path)
    kit.add_argument("--python", default="3.12", help="the GPU machine's CPython (default 3.12)")
    kit.add_argument("--wheelhouse", type=Path, default=None, help="wheel cache (default: gpu-kit-wheels in fimls' cache)")
    kit.add_argument("--offline", action="store_true", help="take every wheel from the cache; fetch nothing")
    commands.add_parser("verify", help="import the inference path and print versions (run.sh)")
    warm = commands.add_parser("warm-kernels", help="build the CUDA GPTQ kernels once, first choice first (run.sh)")
    warm.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command == "verify":
        return verify()
    if args.command == "warm-kernels":
        from fimls.engine.model.kernels import warm_kernels  # imports torch: only for this subcommand

        return warm_kernels(args.report)
    try:
        if args.command == "build":
            manifest = build(args.directory, args.python, args.wheelhouse, args.offline)
            print(f"{args.directory}: {manifest['bytes'] / 2**20:.1f} MiB for CPython {args.python}; run it with run.sh OUTPUT_DIR")
            return 0
        return _prepare(args.python or ["3.11", "3.12"], args.image_venv)
    except RuntimeError as error:
        print(f"kit.py: {error}", file=sys.stderr)
        return 2


def _prepare(pythons: list[str], image_venv: Path | None) -> int:
    for python in pythons:
        with tempfile.TemporaryDirectory() as scratch:
            manifest = build(Path(scratch) / "kit", python)
        print(f"wheels for CPython {python}: a kit of {manifest['bytes'] / 2**20:.1f} MiB", file=sys.stderr)
    make_image_stand_in(image_venv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
