"""The gateway on real HTTP for the tests: uvicorn in a thread on a free 127.0.0.1 port
(:func:`gateway.server.running_gateway`, the demo's door too)."""

from gateway.server import running_gateway

__all__ = ["running_gateway"]
