"""Unpack Debian's build of Neovim from SUITE (trixie: 0.10.4, sid: 0.12.x) into DIR and print the
path of DIR/nvim, a wrapper that runs it on an older Linux (fimls.bench.debian does the work). PyPI
has only Neovim 0.11, so this is how the plugin's 0.10 and 0.12 paths run for real (it needs the
Debian archive this machine's apt is configured with; tests never download anything):

    FIMLS_TEST_NVIM=$(python tests/nvim/get_debian_neovim.py trixie /tmp/nvim-0.10) pytest tests/test_nvim.py
"""

import sys

from fimls.bench.debian import unpack

if __name__ == "__main__":
    suite, directory = sys.argv[1:3]
    print(unpack("neovim", directory, suite)[0])
