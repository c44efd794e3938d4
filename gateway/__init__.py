"""The strategy gateway: the authenticated HTTP door of the strategies' bots (issue 12).

:func:`gateway.app.create_app` builds the FastAPI app from a
:class:`~allocator.settings.Settings` record (``allocator serve`` runs it on uvicorn);
:class:`gateway.launch.BarLauncher` and :func:`gateway.launch.request_bar_run` launch a bar's
run the moment its last intent is stored. The bots' client is :mod:`allocator.client`. Design:
docs/decisions/0015-strategy-gateway.md.
"""
