"""Run a script as on a small device: the named top-level packages cannot be imported.

    python run_blocked.py torch,onnx,onnxruntime SCRIPT ARGS...

A sys.meta_path finder refuses the blocked names; at exit the line "BLOCKED-IMPORTS: [...]" on stderr
lists any blocked module that got into sys.modules anyway (it must be empty).
"""
import runpy
import sys


class Blocker:
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"'{name}' is not installed on this (simulated) device")
        return None


def main() -> int:
    blocked = [n for n in sys.argv[1].split(",") if n]
    script = sys.argv[2]
    for name in blocked:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, Blocker(blocked))
    sys.argv = sys.argv[2:]
    sys.path.insert(0, str(__import__("pathlib").Path(script).resolve().parent))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    leaked = sorted(n for n in sys.modules if n.split(".")[0] in set(blocked))
    print(f"BLOCKED-IMPORTS: {leaked}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
