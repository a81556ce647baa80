"""`fimls` with a Python audit hook that writes every network call and every import of a module from
the model's folder to $FIMLS_TEST_AUDIT (one line each), for the security tests. fimls itself
runs unchanged. A Unix socket (the window's way to this user's daemon) is not network."""

import os
import socket
import sys

_log = open(os.environ["FIMLS_TEST_AUDIT"], "a", buffering=1)
_NETWORK = {"socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.gethostbyname", "urllib.Request"}


def _audit(event: str, args: tuple) -> None:
    if event in _NETWORK:
        if event == "socket.connect" and getattr(args[0], "family", None) == socket.AF_UNIX:
            return
        _log.write(f"{event} {args!r}\n")


sys.addaudithook(_audit)

if __name__ == "__main__":
    from fimls.cli import main

    sys.exit(main(sys.argv[1:]))
