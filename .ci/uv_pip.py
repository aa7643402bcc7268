"""Run ``uv pip ...`` with the package sources pip is configured with on this machine.

uv does not read pip's configuration (pip.conf files, ``PIP_*`` variables), so a machine whose
pip points at a mirror, extra indexes, local wheel folders or a constraints file would have uv
resolve against other sources than pip does. This script asks pip for its effective
configuration (``python -m pip config list``: files and environment, later ones winning) and
passes the same sources to uv.

Usage: python .ci/uv_pip.py UV_EXECUTABLE SUBCOMMAND [ARGS...]
e.g.   python .ci/uv_pip.py .venv/bin/uv sync --python .venv/bin/python requirements.lock
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

# pip's sections in increasing precedence: [global] < [install] < PIP_* environment variables.
SECTIONS = ("global", "install", ":env:")


def pip_config() -> dict[str, str]:
    """pip's effective settings, keyed by option name without the section."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, option = key.rpartition(".")
        if not sep or not dot or section not in found:
            continue
        try:
            found[section][option] = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            found[section][option] = raw.strip("'\"")
    merged: dict[str, str] = {}
    for section in SECTIONS:
        merged.update(found[section])
    return merged


def uv_arguments(config: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The uv options and environment variables equivalent to pip's source settings."""
    args: list[str] = []
    env: dict[str, str] = {}
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if "index-url" in config:
        args += ["--index-url", config["index-url"]]
    for url in config.get("extra-index-url", "").split():
        args += ["--extra-index-url", url]
    for location in config.get("find-links", "").split():
        args += ["--find-links", location]
    for host in config.get("trusted-host", "").split():
        args += ["--allow-insecure-host", host]
    # pip merges every index and picks the best version; uv's default stops at the first index
    # that has the package, which would let a partial local mirror shadow newer releases.
    if "extra-index-url" in config or "find-links" in config:
        args += ["--index-strategy", "unsafe-best-match"]
    if config.get("cert"):
        env["SSL_CERT_FILE"] = config["cert"]
    if config.get("timeout") or config.get("default-timeout"):
        env["UV_HTTP_TIMEOUT"] = config.get("timeout") or config["default-timeout"]
    return args, env


def constraint_arguments(config: dict[str, str]) -> list[str]:
    """pip's constraints files (e.g. a cap on releases a machine holds) as uv options."""
    args: list[str] = []
    for path in config.get("constraint", "").split():
        if os.path.isfile(path):
            args += ["--constraint", path]
    return args


def main(argv: list[str]) -> int:
    """Run uv with pip's sources added to the given ``uv pip`` subcommand."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    uv, subcommand, rest = argv[0], argv[1], argv[2:]
    config = pip_config()
    sources, env = uv_arguments(config)
    # A lock already pins every version, so constraints only shape a new resolution.
    extra = constraint_arguments(config) if subcommand in ("compile", "install") else []
    command = [uv, "pip", subcommand, *sources, *extra, *rest]
    print("+", " ".join(command), flush=True)
    return subprocess.call(command, env={**os.environ, **env})


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
