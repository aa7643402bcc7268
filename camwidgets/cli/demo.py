"""``camwidgets demo``: serve the explorer app (``camwidgets/demo/app.ipynb``) with Voila.

The server listens on 127.0.0.1 only, refuses requests whose Host header is not a local name
(so a DNS-rebinding page cannot reach it through the browser), admits visitors with a random
token printed in the URL (unless ``--no-token``), and shuts down kernels left idle (each page
load starts one). SIGTERM, SIGHUP or Ctrl+C stop Voila and every kernel it started.

For a class: Voila keeps ``--pool`` kernels started, each with the app already run, so a page
that opens gets its panel without waiting for Python, torch and the model to load; the pool
refills behind it. ``--students`` caps the kernels alive at once (pre-started ones included):
a page past the cap says the machine is full instead of loading. Each student's kernel holds
about {mb} MB; this machine has {total} MB of memory, so it holds about {fits} students (the
default for --students; on 2 CPU cores, fewer get their first picture quickly: see
docs/how-to/teach-a-class.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import webbrowser
from pathlib import Path
from typing import Any

from camwidgets.cli.errors import UsageError
from camwidgets.cli.seats import MAX_VARIABLE, MB_PER_STUDENT, SEATS_VARIABLE, seats_for_memory

APP = Path(__file__).resolve().parents[1] / "demo" / "app.ipynb"
HOST = "127.0.0.1"
# After SIGTERM Voila shuts its kernels down; past this it and they are killed.
GRACE_S = 10.0
# Kernels kept ready by default: the first visitors get their panel at once; a class asks
# for more with --pool.
DEFAULT_POOL = 2
# Seconds before Voila starts a kernel to replace one a page took (see voila_command).
REFILL_DELAY_S = 60


class _Stop(Exception):
    """Raised in the main thread by the signal handlers: stop the server now."""


def add_parser(subparsers: Any) -> None:
    """Register ``demo`` on the ``camwidgets`` parser."""
    fits = seats_for_memory(_memory_mb())
    parser = subparsers.add_parser(
        "demo",
        help="serve the explorer on the bundled shapes model in Voila (127.0.0.1 only)",
        description=(__doc__ or "").format(mb=MB_PER_STUDENT, total=round(_memory_mb()), fits=fits),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=_port, default=8866, help="port on 127.0.0.1 (default 8866; 0: any free)"
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--open",
        dest="browser",
        action="store_const",
        const=True,
        help="open the app in a web browser once it is ready",
    )
    browser.add_argument(
        "--no-browser",
        dest="browser",
        action="store_const",
        const=False,
        help="only print the URL (default when no display is found)",
    )
    parser.add_argument(
        "--no-token",
        action="store_true",
        help="admit anyone who can reach 127.0.0.1 without a token (shared machines: avoid)",
    )
    parser.add_argument(
        "--cull-idle",
        type=_seconds,
        default=600,
        metavar="SECONDS",
        help="shut down kernels idle this long, e.g. of closed tabs (default 600; 0: never)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=_host_name,
        metavar="NAME",
        help="another Host name to accept besides localhost and 127.0.0.1 (e.g. behind a proxy)",
    )
    parser.add_argument(
        "--pool",
        type=_count,
        default=DEFAULT_POOL,
        metavar="N",
        help=f"kernels kept started with the app already run (default {DEFAULT_POOL}; "
        "a class: about the number of students; 0: start one per page)",
    )
    parser.add_argument(
        "--students",
        type=_count,
        default=fits,
        metavar="N",
        help=f"at most N kernels at once, pre-started ones included; later pages say the "
        f"machine is full (default {fits}: this machine's memory at about {MB_PER_STUDENT} MB "
        "per student)",
    )
    parser.set_defaults(run=run, browser=None)


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 meaning any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def _host_name(text: str) -> str:
    """argparse type: a host name (loopback addresses are always accepted, others never)."""
    import ipaddress

    name = text.strip().lower()
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        if not name or any(c in name for c in "/:@ "):
            raise argparse.ArgumentTypeError(f"expected a host name, got {text!r}") from None
        return name
    raise argparse.ArgumentTypeError(
        f"{text!r} is an address, not a name: loopback addresses are always accepted, and the "
        "server listens on 127.0.0.1 only"
    )


def _seconds(text: str) -> int:
    """argparse type: a non-negative number of seconds."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value}")
    return value


def _count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _memory_mb() -> float:
    """This machine's memory in MB (from /proc or sysconf: no psutil import for --help)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return 8192.0  # an assumption where the system does not say


def voila_command(
    voila: str,
    port: int,
    cull_idle: int,
    token: bool,
    hosts: list[str],
    pool: int = 0,
) -> list[str]:
    """The Voila command line: loopback only, Host names checked, idle kernels culled.

    With ``pool`` > 0, Voila keeps that many kernels started with the notebook already run
    (its ``preheat_kernel`` and ``pool_size`` options, Voila >= 0.3).
    """
    tornado = {"allow_remote_access": False, "local_hostnames": ["localhost", *hosts]}
    command = [
        voila,
        str(APP),
        f"--port={port}",
        f"--Voila.ip={HOST}",
        "--Voila.port_retries=0",
        "--no-browser",
        "--theme=light",
        # Voila sets allow_remote_access=True itself; its tornado_settings are applied after.
        f"--Voila.tornado_settings={tornado!r}",  # a Python literal (traitlets)
    ]
    if token:
        # The token itself travels in the JUPYTER_TOKEN variable, not in the process list.
        command.append("--Voila.auto_token=True")
    if pool > 0:
        command += [
            "--VoilaConfiguration.preheat_kernel=True",
            f"--VoilaConfiguration.default_pool_size={pool}",
            # Refill the pool a while after kernels are taken, not at once (Voila: 1 s): when a
            # class arrives together, the replacements would otherwise import torch and run the
            # app on the same cores while the students' pages draw.
            f"--VoilaKernelManager.fill_delay={REFILL_DELAY_S}",
        ]
    if cull_idle > 0:
        command += [
            f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
            f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle // 2))}",
        ]
    return command


def run(args: argparse.Namespace) -> int:
    """Start Voila, print the URL, wait; on a signal stop Voila and its kernels."""
    voila = _find_voila()
    if not APP.is_file():
        raise UsageError(f"the demo notebook is missing at {APP}; reinstall camwidgets")
    port = args.port or _free_port()
    _check_free(port)
    token = "" if args.no_token else secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE")}
    if token:
        env["JUPYTER_TOKEN"] = token
    if args.students and args.pool > args.students:
        raise UsageError(
            f"--pool {args.pool} is more than --students {args.students}: pre-started kernels "
            "take seats too"
        )
    seats = tempfile.TemporaryDirectory(prefix="camwidgets-seats-")
    if args.students:
        env[SEATS_VARIABLE], env[MAX_VARIABLE] = seats.name, str(args.students)
    command = voila_command(
        voila, port, args.cull_idle, bool(token), args.allow_host, pool=args.pool
    )
    url = f"http://{HOST}:{port}/" + (f"?token={token}" if token else "")
    print(f"camwidgets demo: starting Voila on {HOST}:{port} ...", flush=True)
    if args.pool:
        print(
            f"camwidgets demo: starting {args.pool} kernel(s) with the app already run, for "
            f"up to {args.students or 'any number of'} students",
            flush=True,
        )
    handlers = _install_handlers()
    process: subprocess.Popen[bytes] | None = None
    try:
        process = subprocess.Popen(
            command, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
        if not _wait_ready(process, port):
            return _exited(process)
        print(f"camwidgets demo: open {url}", flush=True)
        if not token:
            print(
                "camwidgets demo: warning: no token: anyone who can reach 127.0.0.1 on this "
                "machine can use the app",
                file=sys.stderr,
            )
        print("camwidgets demo: Ctrl+C stops the server and its kernels", flush=True)
        if _should_open(args.browser):
            webbrowser.open(url)
        return _exited(process, wait=True)
    except (_Stop, KeyboardInterrupt):
        print("camwidgets demo: stopping Voila and its kernels ...", flush=True)
        return 0
    finally:
        if process is not None:
            _shutdown(process)
        _restore_handlers(handlers)
        seats.cleanup()


def _find_voila() -> str:
    """The voila executable next to this Python, else on PATH."""
    import shutil

    here = str(Path(sys.executable).parent)
    found = shutil.which("voila", path=here) or shutil.which("voila")
    if found is None:
        raise UsageError('voila is not installed: pip install "camwidgets[demo]"')
    return found


def _free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _check_free(port: int) -> None:
    """A UsageError if something already listens on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as err:
            raise UsageError(
                f"cannot listen on {HOST}:{port} ({err.strerror}); choose another --port, "
                "or --port 0 for any free one"
            ) from err


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """Wait until Voila accepts connections (a TCP connect: a GET would start a kernel)."""
    while process.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _exited(process: subprocess.Popen[bytes], wait: bool = False) -> int:
    """Voila's own exit status, explained when it is a failure."""
    code = process.wait() if wait else process.returncode
    if code:
        print(f"camwidgets demo: error: Voila exited with status {code}", file=sys.stderr)
    return 1 if code else 0


def _should_open(choice: bool | None) -> bool:
    """--open / --no-browser, else open only where a browser can show something."""
    if choice is not None:
        return choice
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def _die_with_parent() -> None:
    """In the Voila child (Linux): get SIGTERM if camwidgets dies without cleaning up."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _raise_stop(signum: int, frame: types.FrameType | None) -> None:
    """Signal handler: unwind the main thread into the shutdown code."""
    raise _Stop(signal.Signals(signum).name)


def _install_handlers() -> dict[int, Any]:
    """Route SIGTERM and SIGHUP (and keep SIGINT) to a clean stop; return the old handlers."""
    old: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        old[sig] = signal.signal(sig, _raise_stop)
    return old


def _restore_handlers(old: dict[int, Any]) -> None:
    """Put back the handlers that were there before."""
    for sig, handler in old.items():
        signal.signal(sig, handler)


def _shutdown(process: subprocess.Popen[bytes]) -> None:
    """Stop Voila (it shuts its kernels down), then end any of its processes still alive.

    Kernels run in their own sessions (jupyter_client starts them so), so they are not in
    Voila's process group: they are found as Voila's descendants before it is stopped.
    """
    # No more signals while cleaning up: a second Ctrl+C must not leave orphans behind.
    ignored: dict[int, Any] = {
        sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        descendants = _descendants(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid, signal.SIGKILL)
                process.wait()
        _end(descendants)
    finally:
        _restore_handlers(ignored)


def _descendants(pid: int) -> list[Any]:
    """psutil handles of every process below ``pid`` (empty without psutil)."""
    try:
        import psutil
    except ImportError:  # ipykernel depends on psutil, so the demo extra has it
        return []
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _end(processes: list[Any]) -> None:
    """SIGTERM the processes (and their groups) still alive, then SIGKILL after a grace time."""
    if not processes:
        return
    import psutil

    alive = [p for p in processes if p.is_running()]
    for proc in alive:
        _kill_group(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(alive, timeout=3)
    for proc in alive:
        _kill_group(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=3)


def _kill_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` if it leads one, else the process itself."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
