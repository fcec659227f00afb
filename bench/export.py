"""Time building a data export of the heavy demo user, beside `zip -0 -r` of the media folder.

    .venv/bin/python bench/export.py                      # --heavy 5000 and 50000 on SQLite
    .venv/bin/python bench/export.py --sizes 50000 --runs 5
    .venv/bin/python bench/export.py --database-url postgresql://postgres@127.0.0.1/postgres

For each size, a fresh data folder and database get the demo accounts and `heavy@example.com`
with N prompts (N/10 images, about 160 KB each, as generated images weigh). Each run then
builds one full export of the heavy user in a separate process, after a small warm-up export
of demo2@ in that process (as a worker that has run before: templates compiled, catalogs read);
the peak RSS is that process's VmHWM since it started, and its RSS before the measured build is
shown beside it; the archive writer process it starts reports its own VmHWM, shown after a +.
Each run also times `zip -0 -r -q` over the same media folder as the floor (Python's zipfile
with ZIP_STORED when `zip` is not installed; the table says which). The two alternate, so both
see the same warm page cache; the median of the runs is reported.

With --database-url, a throwaway database is created on that server for each size and dropped
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from heavy import bench_app, heavy_data, status_kib  # noqa: E402

# --- the child: builds one export and reports ------------------------------------------------


def _time_phases() -> dict[str, float]:
    """Time the build's parts: reading and encoding the records (while the writer process
    copies the media files they name), then the wait for the writer to finish after the last
    record (the media still to copy, index and manifest, fsync); and keep the writer
    process's own peak RSS, which it reports."""
    from app.services import archive, archive_writer

    phases = {"records": 0.0, "tail": 0.0, "writer_peak_kib": 0.0}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[name] += time.perf_counter() - started

        return run

    archive._write_category = timed("records", archive._write_category)  # type: ignore[assignment]
    finish = timed("tail", archive_writer.ArchiveWriter.finish)

    def finish_and_note_peak(*args: Any, **kwargs: Any) -> Any:
        result = finish(*args, **kwargs)
        phases["writer_peak_kib"] = max(phases["writer_peak_kib"], result.peak_rss_kib or 0)
        return result

    archive_writer.ArchiveWriter.finish = finish_and_note_peak  # type: ignore[method-assign]
    return phases


def child(data_dir: Path, database_url: str, export_id: int, warm_up_id: int) -> int:
    """Build a small export first (as a running worker has: templates compiled, catalogs
    read), then the measured one. Peak RSS is VmHWM, this process's own high-water mark since
    it started (ru_maxrss would not do: Linux carries it over from the parent at exec)."""
    from app.extensions import db
    from app.services.exports import build_export

    phases = _time_phases()

    app = bench_app(data_dir, database_url)
    with app.app_context():
        build_export(warm_up_id)
        phases.update(records=0.0, tail=0.0, writer_peak_kib=0.0)
        rss_before = status_kib("VmRSS")
        started = time.perf_counter()
        build_export(export_id)
        seconds = time.perf_counter() - started
        peak = status_kib("VmHWM")
        db.session.remove()
        db.engine.dispose()
    report = {
        "seconds": seconds,
        "peak_kib": peak,
        "rss_before_kib": rss_before,
        "records_seconds": phases["records"],
        "tail_seconds": phases["tail"],
        "writer_peak_kib": phases["writer_peak_kib"],
    }
    print(json.dumps(report))
    return 0


# --- the parent -------------------------------------------------------------------------------


def _request_export(data_dir: Path, database_url: str, user_id: int) -> int:
    from app.extensions import db
    from app.services.exports import request_export

    app = bench_app(data_dir, database_url)
    with app.app_context():
        export = request_export(user_id, [], None, None)
        db.session.commit()
        export_id = export.id
        db.session.remove()
        db.engine.dispose()
    return export_id


def _archive_of(data_dir: Path, database_url: str, export_id: int) -> tuple[Path, dict[str, int]]:
    from app.extensions import db
    from app.models import Export
    from app.services.exports import export_file_path

    app = bench_app(data_dir, database_url)
    with app.app_context():
        export = db.session.get(Export, export_id)
        assert export is not None
        path = export_file_path(export)
        assert path is not None, f"export {export_id} is {export.status}: {export.error}"
        summary = dict(export.summary)
        db.session.remove()
        db.engine.dispose()
    return path, summary


def _build_in_child(
    data_dir: Path, database_url: str, export_id: int, warm_up_id: int
) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--child",
        str(export_id),
        "--warm-up",
        str(warm_up_id),
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    process_seconds = time.perf_counter() - started
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_seconds"] = process_seconds
    return report


def _floor(media_dir: Path, target: Path) -> tuple[float, int, str]:
    target.unlink(missing_ok=True)
    zip_binary = shutil.which("zip")
    started = time.perf_counter()
    if zip_binary:
        subprocess.run(
            [zip_binary, "-0", "-r", "-q", str(target), media_dir.name],
            cwd=media_dir.parent,
            check=True,
        )
        how = "zip -0 -r"
    else:
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in sorted(media_dir.rglob("*")):
                archive.write(path, path.relative_to(media_dir.parent))
        how = "zipfile ZIP_STORED"
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return seconds, size, how


def bench_size(prompts: int, runs: int, server_url: str | None) -> dict[str, object]:
    with heavy_data(prompts, server_url, "export-bench") as data:
        work, database_url = data.work, data.database_url
        user_id, small_user_id = data.user_id, data.small_user_id
        media_dir = work / "media"
        media_files = sum(1 for p in media_dir.rglob("*") if p.is_file())
        media_bytes = sum(p.stat().st_size for p in media_dir.rglob("*") if p.is_file())
        builds: list[dict[str, float]] = []
        floors: list[float] = []
        sizes = {}
        how = ""
        for run in range(runs):
            floor_seconds, floor_size, how = _floor(media_dir, work / "floor.zip")
            floors.append(floor_seconds)
            warm_up_id = _request_export(work, database_url, small_user_id)
            export_id = _request_export(work, database_url, user_id)
            report = _build_in_child(work, database_url, export_id, warm_up_id)
            path, summary = _archive_of(work, database_url, export_id)
            sizes = {"archive": path.stat().st_size, "floor": floor_size}
            path.unlink()  # keep the disk tidy between runs; the row is not looked at again
            builds.append(report)
            print(
                f"  run {run + 1}: build {report['seconds']:.2f} s "
                f"(records {report['records_seconds']:.2f} s, tail {report['tail_seconds']:.2f} s"
                f", peak RSS {report['peak_kib'] / 1024:.0f} MiB"
                f" + writer {report['writer_peak_kib'] / 1024:.0f} MiB)"
                f", {how} {floor_seconds:.2f} s",
                flush=True,
            )
        return {
            "prompts": prompts,
            "records": sum(summary.values()),
            "media_files": media_files,
            "media_bytes": media_bytes,
            "build_seconds": statistics.median(b["seconds"] for b in builds),
            "process_seconds": statistics.median(b["process_seconds"] for b in builds),
            "records_seconds": statistics.median(b["records_seconds"] for b in builds),
            "tail_seconds": statistics.median(b["tail_seconds"] for b in builds),
            "peak_mib": max(b["peak_kib"] for b in builds) / 1024,
            "writer_peak_mib": max(b["writer_peak_kib"] for b in builds) / 1024,
            "baseline_mib": statistics.median(b["rss_before_kib"] for b in builds) / 1024,
            "floor_seconds": statistics.median(floors),
            "archive_bytes": sizes["archive"],
            "floor_bytes": sizes["floor"],
            "floor_how": how,
        }


def _print_table(results: list[dict[str, object]], backend: str) -> None:
    how = results[0]["floor_how"] if results else "zip -0 -r"
    print()
    print(f"Export of heavy@example.com on {backend}; floor: `{how}` of the media folder")
    print(
        "| prompts | records | media files (MB) | build s (records, tail) | floor s | ratio "
        "| peak RSS MiB (before the build) + writer | archive MB | floor zip MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = float(r["build_seconds"]) / max(float(r["floor_seconds"]), 1e-9)
        print(
            f"| {r['prompts']:,} | {r['records']:,} "
            f"| {r['media_files']:,} ({int(r['media_bytes']) / 1e6:.1f}) "
            f"| {r['build_seconds']:.2f} ({r['records_seconds']:.2f}, {r['tail_seconds']:.2f}) "
            f"| {r['floor_seconds']:.2f} | {ratio:.1f}x "
            f"| {r['peak_mib']:.0f} ({r['baseline_mib']:.0f}) + {r['writer_peak_mib']:.0f} "
            f"| {int(r['archive_bytes']) / 1e6:.1f} | {int(r['floor_bytes']) / 1e6:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to use")
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        return child(args.data_dir, args.database_url, args.child, args.warm_up)

    os.environ.setdefault("PRIVACY_CENTER_ENV", "development")
    results = []
    for prompts in args.sizes:
        print(f"heavy N={prompts}", flush=True)
        results.append(bench_size(prompts, args.runs, args.database_url or None))
    backend = "PostgreSQL" if args.database_url else "SQLite"
    _print_table(results, backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
