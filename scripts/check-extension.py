"""Load a freshly linked extension module with RTLD_NOW and fail if any symbol
is unresolved.

A Python extension links with undefined symbols allowed (libpython's come from
the interpreter that imports it), so a runtime function that nobody defines
would otherwise surface only at `import genie`.  ctypes dlopens with RTLD_NOW
inside a running interpreter, which is exactly the import-time environment.
Run by the build right after linking genie._C (frontend/CMakeLists.txt).
"""
import ctypes
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check-extension.py MODULE.so", file=sys.stderr)
        return 2
    try:
        ctypes.CDLL(sys.argv[1])
    except OSError as e:
        print(f"genie: extension does not load: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
