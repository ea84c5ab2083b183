"""An emulator of the Cloudflare Workers AI REST API (see `app.create_app`)."""

from workerprobe.emulator.app import create_app

__all__ = ["create_app"]
