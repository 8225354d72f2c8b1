"""The stateless HTTP API of the product brief (FastAPI) and the web page it serves.

Start it with ``python -m mantile.api --host 127.0.0.1 --port 8000``; docs at ``/docs``.
"""

from mantile.api.app import create_app

__all__ = ["create_app"]
