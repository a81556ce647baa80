"""Programs from Debian's archive, unpacked with the libraries they link (glibc included) into a
folder, with a wrapper that runs each on an older Linux: Neovim 0.10 / 0.12 for the editor tests,
and llama.cpp (`llama-server`, `llama-quantize`, `llama-bench`), the peer fimls is measured against
and a team's inference server in the tests. The archive is the one this machine's apt is
configured with; no mirror is written into the repository.

    python -m fimls.bench.debian llama.cpp .venv/llama.cpp     # sid's llama.cpp-tools
    python -m fimls.bench.debian neovim /tmp/nvim-0.12 sid      # or trixie for 0.10
"""

from __future__ import annotations

import glob
import lzma
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

# Dependencies that are scripts or configuration only: never needed to run the programs.
_NOT_NEEDED = {"debconf", "debconf-2.0", "perl-base", "wget", "curl"}
# What each set unpacks: (package, programs to wrap).
SETS = {
    "llama.cpp": ("llama.cpp-tools", ("llama-server", "llama-quantize", "llama-bench")),
    "neovim": ("neovim", ("nvim",)),
}


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 `.sources` or one-line `sources.list`)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if uris and suites and not any(s.endswith("-security") for s in suites) and "debian" in uris[0]:
                return uris[0].rstrip("/")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[2].endswith("-security"):
                uri = next(p for p in parts[1:] if "://" in p)
                if "debian" in uri:
                    return uri.rstrip("/")
    raise SystemExit("no Debian archive found in /etc/apt/sources.list(.d)")


def packages(mirror: str, suite: str) -> dict[str, dict[str, str]]:
    with urllib.request.urlopen(f"{mirror}/dists/{suite}/main/binary-amd64/Packages.xz") as response:
        text = lzma.decompress(response.read()).decode()
    index = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            index.setdefault(fields["Package"], fields)
    return index


def closure(index: dict, root: str) -> list[str]:
    """`root` and what it depends on, first alternatives, packages of the suite only."""
    wanted, queue = [], [root]
    while queue:
        name = queue.pop()
        if name in wanted or name not in index or name in _NOT_NEEDED:
            continue
        wanted.append(name)
        for clause in index[name].get("Depends", "").split(","):
            queue.append(clause.split("|")[0].split("(")[0].split(":")[0].strip())
    return wanted


def wrapper(folder: Path, program: str) -> Path:
    return folder / program


def unpack(kind: str, directory: str, suite: str = "sid") -> list[Path]:
    """Unpack set `kind` from `suite` into `directory` (kept: a second call returns at once)."""
    package, programs = SETS[kind]
    folder = Path(directory).resolve()
    stamp = folder / f".unpacked-{package}-{suite}"
    if stamp.is_file() and all(wrapper(folder, p).is_file() for p in programs):
        return [wrapper(folder, p) for p in programs]
    root = folder / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    mirror = apt_mirror()
    index = packages(mirror, suite)
    for name in closure(index, package):
        deb = folder / f"{name}.deb"
        urllib.request.urlretrieve(f"{mirror}/{index[name]['Filename']}", deb)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        deb.unlink()
    libs = root / "usr/lib/x86_64-linux-gnu"
    # ggml loads its CPU backends from beside the executable, which under the wrapper is the
    # dynamic loader, in this folder.
    for backend in glob.glob(str(libs / "ggml" / "backends*" / "*.so")):
        link = libs / Path(backend).name
        if not link.exists():
            link.symlink_to(backend)
    search = ":".join(str(p) for p in (libs, root / "lib/x86_64-linux-gnu", libs / "llama") if p.exists())
    written = []
    for program in programs:
        script = wrapper(folder, program)
        extra = f'export VIMRUNTIME="{root}/usr/share/nvim/runtime"\n' if program == "nvim" else ""
        script.write_text(
            f"#!/bin/sh\n{extra}"
            f'exec "{libs}/ld-linux-x86-64.so.2" --library-path "{search}" "{root}/usr/bin/{program}" "$@"\n'
        )
        script.chmod(0o755)
        written.append(script)
    stamp.write_text(index[package]["Version"])
    return written


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in SETS:
        print(__doc__, file=sys.stderr)
        return 2
    for path in unpack(argv[0], argv[1], *argv[2:]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
