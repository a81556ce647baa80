"""Unpack Debian's build of Neovim from SUITE (trixie: 0.10.4, sid: 0.12.x), with the libraries of
that suite it links (glibc included), into DIR, and write DIR/nvim, a wrapper that runs it on an
older Linux. PyPI has only Neovim 0.11, so this is how the plugin's 0.10 and 0.12 paths run for
real (it needs the Debian mirror this machine's apt is configured with; tests never download anything):

    FIMLS_TEST_NVIM=$(python tests/nvim/get_debian_neovim.py trixie /tmp/nvim-0.10) pytest tests/test_nvim.py
"""

from __future__ import annotations

import glob
import lzma
import subprocess
import sys
import urllib.request
from pathlib import Path


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 `.sources` or one-line `sources.list`);
    no mirror is written into the repository."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            uris = fields.get("URIs", "").split()
            suites = fields.get("Suites", "").split()
            if uris and suites and not any(s.endswith("-security") for s in suites) and "debian" in uris[0]:
                return uris[0].rstrip("/")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[2].endswith("-security"):
                uri = next(p for p in parts[1:] if "://" in p)
                if "debian" in uri:
                    return uri.rstrip("/")
    raise SystemExit("no Debian archive found in /etc/apt/sources.list(.d)")


MIRROR = apt_mirror()


def packages(suite: str) -> dict[str, dict[str, str]]:
    with urllib.request.urlopen(f"{MIRROR}/dists/{suite}/main/binary-amd64/Packages.xz") as response:
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
        if name in wanted or name not in index:
            continue
        wanted.append(name)
        for clause in index[name].get("Depends", "").split(","):
            queue.append(clause.split("|")[0].split("(")[0].split(":")[0].strip())
    return wanted


def main(suite: str, directory: str) -> None:
    folder = Path(directory).resolve()
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    index = packages(suite)
    for name in closure(index, "neovim"):
        deb = folder / f"{name}.deb"
        urllib.request.urlretrieve(f"{MIRROR}/{index[name]['Filename']}", deb)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    libs = ":".join(str(root / sub) for sub in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))
    wrapper = folder / "nvim"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'export VIMRUNTIME="{root}/usr/share/nvim/runtime"\n'
        f'exec "{root}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "{libs}" "{root}/usr/bin/nvim" "$@"\n'
    )
    wrapper.chmod(0o755)
    print(wrapper)


if __name__ == "__main__":
    main(*sys.argv[1:3])
