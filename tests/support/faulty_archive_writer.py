"""The archive writer process with a fault after a number of media files: for tests only.

    python -I -S faulty_archive_writer.py (--fail-after N | --die-after N) TARGET GENERATED_AT

--fail-after N: the next copy raises "No space left on device", as a full disk would.
--die-after N: the process kills itself with SIGKILL, as the kernel's OOM killer would.

Standard library only, like the writer it loads (by path: the package's __init__ would
import the whole app).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Any

WRITER_PATH = Path(__file__).resolve().parents[2] / "app" / "services" / "zip_writer.py"


def _load_writer() -> Any:
    spec = importlib.util.spec_from_file_location("zip_writer", WRITER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    fault, after, rest = argv[0], int(argv[1]), argv[2:]
    writer = _load_writer()
    real_copy = writer.copy_media_file
    copied = 0

    def faulty_copy(*args: Any) -> bool:
        nonlocal copied
        if copied >= after:
            if fault == "--die-after":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device", "/srv/demo@example.com")
        copied += 1
        return real_copy(*args)

    writer.copy_media_file = faulty_copy
    return writer.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
