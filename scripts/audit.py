"""``make audit``: pip-audit of the hashed lock file, offline-safe.

Audits every pin of ``requirements/lock.txt`` (``--require-hashes --disable-pip``: no
resolution, no install) against the advisory service pip-audit uses (PyPI's JSON API by
default). Exit status: 1 when a pinned release has a known vulnerability; 0 when none has,
and 0 with a clear ``pip-audit skipped`` message when no advisory index could be reached
(offline machine, or an index mirror without the JSON API: every package comes back "not
found"), so CI without that service never fails for it. A partial audit says how many
packages it could not check.

Usage: ``python scripts/audit.py [requirements/lock.txt] [extra pip-audit arguments]``.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404
import sys
import tempfile
from pathlib import Path

UNREACHABLE = (
    "ConnectionError",
    "Max retries exceeded",
    "NameResolutionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "timed out",
)
"""Text of pip-audit's error output that means the advisory service could not be reached."""


def main(argv: list[str]) -> int:
    """Run the audit; return the exit status (see the module docstring)."""
    lock = argv[0] if argv else "requirements/lock.txt"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        cmd = [
            str(Path(sys.executable).with_name("pip-audit")),
            "--requirement",
            lock,
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report),
            *argv[1:],
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603
        if not report.exists() or not report.read_text().strip():
            if any(text in done.stderr for text in UNREACHABLE):
                print(f"pip-audit skipped: no advisory index reachable ({lock} not audited)")
                return 0
            sys.stderr.write(done.stderr)
            return done.returncode or 1
        data = json.loads(report.read_text())
    deps = data.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if deps and not audited:
        print(
            f"pip-audit skipped: no advisory index reachable ({len(deps)} pins of {lock} "
            "not found on the advisory service)"
        )
        return 0
    vulnerable = [d for d in audited if d.get("vulns")]
    for d in vulnerable:
        ids = ", ".join(v["id"] for v in d["vulns"])
        fixes = ", ".join(sorted({f for v in d["vulns"] for f in v.get("fix_versions", [])}))
        print(f"VULNERABLE {d['name']}=={d['version']}: {ids} (fixed in: {fixes or 'none'})")
    skipped = len(deps) - len(audited)
    print(
        f"pip-audit: {len(audited)} pins audited, {len(vulnerable)} vulnerable"
        + (f", {skipped} not found on the advisory service" if skipped else "")
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
