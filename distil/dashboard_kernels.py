"""The dashboard server's kernel manager: Jupyter's, with a cap on kernels running at once (`distil.dashboard_server`
says why; Voila loads it by name)."""

from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer

from distil.dashboard_server import MAX_KERNELS


class CappedKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager with a cap on kernels running at once (one per open dashboard page)."""

    max_kernels = Integer(MAX_KERNELS, config=True, help="kernels running at once; a page beyond it is refused")

    async def start_kernel(self, *args, **kwargs):
        if len(self.list_kernel_ids()) >= self.max_kernels:
            raise web.HTTPError(503, f"{self.max_kernels} dashboards are open already: close one (its kernel ends "
                                     "within a few minutes) and load the page again")
        return await super().start_kernel(*args, **kwargs)
