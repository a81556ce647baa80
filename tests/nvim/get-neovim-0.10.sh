#!/bin/sh
# Unpacks Debian trixie's Neovim 0.10.4 (and the trixie libraries it links, glibc 2.41 included)
# into DIR and writes DIR/nvim, a wrapper that runs it on an older Debian/Ubuntu. PyPI has only
# Neovim 0.11, so this is how the plugin's 0.10 path was run for real:
#   FIMLS_TEST_NVIM=$(tests/nvim/get-neovim-0.10.sh /tmp/nvim-0.10) .venv/bin/python -m pytest tests/test_nvim.py
set -eu
dir=$(mkdir -p "$1" && cd "$1" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cd "$dir"
curl -fsS "$mirror/dists/trixie/main/binary-amd64/Packages.xz" | xz -d > Packages
for package in neovim neovim-runtime libc6 libgcc-s1 libluajit-5.1-2 libmsgpack-c2 libtree-sitter0.22 \
    libunibilium4 libuv1t64 libvterm0 lua-lpeg lua-luv; do
  file=$(awk -v p="$package" '$1 == "Package:" { on = ($2 == p) } on && $1 == "Filename:" { print $2; exit }' Packages)
  curl -fsS -o "$package.deb" "$mirror/$file"
  dpkg-deb -x "$package.deb" root
done
libs="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/lib/x86_64-linux-gnu"
cat > nvim <<WRAPPER
#!/bin/sh
export VIMRUNTIME="$dir/root/usr/share/nvim/runtime"
exec "$dir/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$libs" "$dir/root/usr/bin/nvim" "\$@"
WRAPPER
chmod +x nvim
echo "$dir/nvim"
