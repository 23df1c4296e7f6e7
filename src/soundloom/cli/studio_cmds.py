"""CLI: the studio, a local web app over the engines (data, train, generate, latent map, stream)."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

import typer

from ..core.errors import ParameterError
from .app import app


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_pool(text: str) -> tuple[str, Path, str]:
    """``[NAME=]POOL[:MODEL]`` -> (name, pool folder, model); the name defaults to the folder's, the model to
    "features"."""
    name, _, rest = text.rpartition("=") if "=" in text else ("", "", text)
    pool, _, model = rest.partition(":")
    pool_path = Path(pool)
    name = name or pool_path.name
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ParameterError(f"--pool {text!r}: the stream name must be letters, digits, - or _ (NAME=POOL[:MODEL])")
    return name, pool_path, model or "features"


@app.command()
def studio(
    root: Path = typer.Option(
        Path("."), "--root", help="Folder the studio works in; every path it takes stays inside."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    pool: list[str] = typer.Option(
        [], "--pool", help="A stream to serve: [NAME=]POOL[:MODEL] (MODEL a run folder or 'features'); repeatable."
    ),
    max_listeners: int = typer.Option(32, min=1, help="Listeners per stream; one more gets HTTP 503."),
) -> None:
    """Open the studio: browse and scan sounds, train, generate, map latents, stream. API docs at /docs."""
    import uvicorn

    from ..studio.app import ServeLimits
    from ..studio.studio import create_studio
    from .server_cmds import listen_socket

    pools = {}
    for text in pool:
        name, folder, model = parse_pool(text)
        if name in pools:
            raise ParameterError(f"--pool: two streams named {name!r}; name them NAME=POOL")
        pools[name] = (folder, model)
    web = create_studio(root, pools, limits=ServeLimits(max_listeners=max_listeners))
    sock = listen_socket(host, port)
    logging.getLogger("soundloom.studio").setLevel(logging.WARNING)
    sys.setswitchinterval(0.001)  # as `serve`: the event loop gets the GIL back quickly from render threads
    if not is_loopback(host):
        typer.echo(
            f"soundloom: warning: listening on {host}, not loopback: anyone who can reach this address can read, "
            f"write and run jobs under {root.resolve()}",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"soundloom studio: http://{shown}:{port}/  root {root.resolve()}  (Ctrl-C to stop)")
    try:
        uvicorn.Server(uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    finally:
        sock.close()
