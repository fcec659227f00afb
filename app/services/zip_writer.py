"""The process that writes an export's ZIP file: run by archive_writer.ArchiveWriter, as a script.

It reads commands on its standard input, one JSON array per line:

    ["media", source, name]                 copy a stored file in as it is (ZIP_STORED)
    ["spooled", fd, offset, length, name]   compress a range of a spool file into an entry
    ["finish", manifest]                    write manifest.json (`manifest` plus the `files`
                                            list), close the ZIP and fsync it

and answers on its standard output, one JSON object per line: `{"media": n}` now and then
(media commands done), then `{"done": {...}}`, or `{"error": "..."}` before it exits with
status 1. If its input ends before "finish" (the builder failed or was killed), it stops
without writing the ZIP's central directory: a half archive never looks whole.

It imports only what it needs of the standard library (`python -I -S`): it starts in a few
milliseconds, in about 16 MiB, and can touch neither the database nor the builder's state.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import IO

COPY_CHUNK = 256 * 1024  # one read for most images; more buys nothing here
WRITEBACK_BYTES = 32 * 1024 * 1024
REPORT_INTERVAL_SECONDS = 0.2


class HashingSink:
    """Counts and hashes the bytes on their way to the real file."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> None:
        self._digest.update(data)
        self.size += len(data)
        self.target.write(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class _ForwardOnly(HashingSink):
    """The archive file as a plain stream: no seek or tell, hashed and counted as written.

    Every WRITEBACK_BYTES it asks the kernel to start writing what came so far to disk, so
    the fsync before the rename (which stays: it is what makes READY safe) finds little left
    to do, instead of hundreds of megabytes at once at the very end.
    """

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__(target)
        self._written_back = 0

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        super().write(data)
        if self.size - self._written_back >= WRITEBACK_BYTES:
            self._start_writeback()
        return len(data)  # zipfile keeps its own offset from this

    def _start_writeback(self) -> None:
        self.target.flush()
        if hasattr(os, "posix_fadvise"):  # not on macOS; the final fsync does it all there
            # On Linux, DONTNEED starts writing the range back without waiting for it; pages
            # not yet on disk stay in memory (and whatever is already written may be dropped:
            # the archive is read once, when it is downloaded).
            length = self.size - self._written_back
            os.posix_fadvise(
                self.target.fileno(), self._written_back, length, os.POSIX_FADV_DONTNEED
            )
        self._written_back = self.size

    def flush(self) -> None:
        self.target.flush()


class ZipOnDisk:
    """A ZIP on disk whose every entry is hashed as written, for the manifest.

    The manifest's lines wait in an unnamed temporary file rather than in a list, so memory
    does not grow with the number of files (zipfile itself keeps one small ZipInfo per entry
    for the central directory, which it writes at the end).
    """

    def __init__(self, path: Path, date_time: tuple[int, ...], manifest_lines: IO[bytes]) -> None:
        self.date_time = date_time
        self.listed = 0
        self.manifest_lines = manifest_lines
        self.file = path.open("wb")
        # zipfile sees a stream it cannot seek in, so it writes strictly front to back (sizes
        # go in data descriptors): the archive's own hash is taken on the way to disk rather
        # than by reading the whole file back afterwards.
        self.stream = _ForwardOnly(self.file)
        self.zip = zipfile.ZipFile(self.stream, "w", allowZip64=True)

    @contextmanager
    def entry(
        self, name: str, *, compress: bool = True, size: int | None = None
    ) -> Iterator[HashingSink]:
        info = zipfile.ZipInfo(name, date_time=self.date_time)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        if size is not None:
            info.file_size = size
        # Unknown size: ZIP64 headers from the start, so an entry may grow past 4 GiB.
        with self.zip.open(info, "w", force_zip64=size is None) as raw:
            sink = HashingSink(raw)  # type: ignore[arg-type]
            yield sink
        line = json.dumps(
            {"path": name, "size": sink.size, "sha256": sink.sha256}, ensure_ascii=False
        )
        self.manifest_lines.write(((",\n  " if self.listed else "  ") + line).encode("utf-8"))
        self.listed += 1

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """manifest.json, last: `manifest` with every entry written so far as its `files`."""
        # One file per line: readable, whatever the number of files.
        head = json.dumps({**manifest, "files": []}, ensure_ascii=False, indent=1)
        assert head.endswith('"files": []\n}')
        lines = self.manifest_lines
        lines.seek(0)
        with self.entry("manifest.json") as sink:
            sink.write((head[: -len("[]\n}")] + "[\n").encode("utf-8"))
            while chunk := lines.read(COPY_CHUNK):
                sink.write(chunk)
            sink.write(b"\n ]\n}\n")

    def finish(self) -> None:
        """The central directory, then everything on disk before the builder renames it."""
        self.zip.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def abandon(self) -> None:
        """Close the file as it is: no central directory, so it never opens as a whole ZIP."""
        self.file.close()
        # zipfile would try to write its central directory when collected; with the file
        # closed it fails, and here it fails quietly.
        with suppress(ValueError):
            self.zip.close()


# One buffer for every copy: a new chunk per read costs an allocation and its page faults each
# time (reading into this one made the copy about a third faster).
_buffer = memoryview(bytearray(COPY_CHUNK))


def copy_media_file(archive: ZipOnDisk, name: str, source: Path) -> bool:
    """Copy one stored file into the archive as it is; False if it is no longer there."""
    try:
        handle = source.open("rb", buffering=0)
    except FileNotFoundError:
        return False
    size = os.fstat(handle.fileno()).st_size
    with handle, archive.entry(name, compress=False, size=size) as sink:
        while read := handle.readinto(_buffer):
            sink.write(_buffer[:read])
    return True


def copy_spooled(archive: ZipOnDisk, name: str, fd: int, offset: int, length: int) -> None:
    end = offset + length
    with archive.entry(name) as sink:
        while offset < end:
            # pread, not seek and read: the builder shares this descriptor's offset, and it
            # may still be writing the next category's records at the end of the file.
            chunk = os.pread(fd, min(COPY_CHUNK, end - offset), offset)
            if not chunk:
                raise EOFError(f"the spool ends before byte {end}")
            sink.write(chunk)
            offset += len(chunk)


class _Reports:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.media = 0
        self.copied = 0
        self.last = time.monotonic()

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message).encode() + b"\n")
        self.out.flush()

    def media_done(self, copied: bool) -> None:
        self.media += 1
        self.copied += copied
        now = time.monotonic()
        if now - self.last >= REPORT_INTERVAL_SECONDS:
            self.last = now
            self.send({"media": self.media})


def run_writer(
    target: Path, date_time: tuple[int, ...], commands: IO[bytes], out: IO[bytes]
) -> int:
    reports = _Reports(out)
    try:
        with tempfile.TemporaryFile(dir=target.parent) as manifest_lines:
            archive = ZipOnDisk(target, date_time, manifest_lines)
            try:
                for line in commands:
                    command = json.loads(line)
                    kind = command[0]
                    if kind == "media":
                        _kind, source, name = command
                        reports.media_done(copy_media_file(archive, name, Path(source)))
                    elif kind == "spooled":
                        _kind, fd, offset, length, name = command
                        copy_spooled(archive, name, fd, offset, length)
                    elif kind == "finish":
                        archive.write_manifest(command[1])
                        archive.finish()
                        reports.send({"done": _result(archive, reports)})
                        return 0
                    else:
                        raise ValueError(f"unknown command {kind!r}")
                raise EOFError("the builder stopped before the archive was finished")
            finally:
                if not archive.file.closed:
                    archive.abandon()
    except Exception as exc:
        reports.send({"error": f"{type(exc).__name__}: {exc}"[:500]})
        return 1


def _result(archive: ZipOnDisk, reports: _Reports) -> dict[str, Any]:
    return {
        "size": archive.stream.size,
        "sha256": archive.stream.sha256,
        "media": reports.media,
        "copied": reports.copied,
        "peak_rss_kib": _peak_rss_kib(),
    }


def _peak_rss_kib() -> int | None:
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: Sequence[str]) -> int:
    target, generated_at = argv[0], argv[1]
    date_time = datetime.fromisoformat(generated_at).timetuple()[:6]
    return run_writer(Path(target), date_time, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
