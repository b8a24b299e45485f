// The gunicorn worker class api runs under: uvicorn's own, with one change to
// how a worker stops. uvicorn closes its listener and then, at once, every
// connection with no request in progress; a connection it accepted a moment
// before, whose request is still unread in the kernel, counts as idle and is
// closed with the request in it (the client sees a reset). During a handover
// that is up to one request per client each time a worker stops. This worker
// stops accepting first, lets the loop read what was already accepted, and
// only then shuts down, so those requests are answered. With no connection
// open there is nothing to read, and it shuts down at once: an idle api
// stopped 0.5 s later than it had to in every handover.
import { paths } from "../standard/paths";

/** The module's name on the import path, and the worker class gunicorn is given. */
export const uvicornWorker = {
  module: "ayna_uvicorn",
  workerClass: "ayna_uvicorn.GracefulUvicornWorker",
  /** Where it lives on a host: a directory gunicorn adds to the import path (--pythonpath). */
  dir: (project: string) => `${paths.root(project)}/lib`,
  path: (project: string) => `${paths.root(project)}/lib/ayna_uvicorn.py`,
};

/** How long a stopping worker keeps reading accepted connections before it shuts down. */
const drainSeconds = 0.5;
/** The drain is waited in this many steps, so it ends early once no connection is open. */
const drainSteps = 10;

export const uvicornWorkerSource = `"""Installed by ayna-deploy: gunicorn's uvicorn worker, stopping without dropping accepted requests.

uvicorn's shutdown closes every connection that has no request in progress,
including ones accepted an instant before whose request is not read yet. This
worker closes its listeners first, gives the loop up to ${drainSeconds} s to read those
requests (less once no connection is open: with the listeners closed none can
come), then shuts down as uvicorn does (answering what is in progress).
"""

import asyncio
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server

try:
    from uvicorn_worker import UvicornWorker
except ImportError:  # an app on the worker uvicorn itself used to ship
    from uvicorn.workers import UvicornWorker

DRAIN_SECONDS = ${drainSeconds}
DRAIN_STEPS = ${drainSteps}


class DrainingServer(Server):
    def _connections_open(self):
        state = getattr(self, "server_state", None)
        return True if state is None else bool(state.connections)

    async def shutdown(self, sockets=None):
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for _ in range(DRAIN_STEPS):
            if not self._connections_open():
                break
            await asyncio.sleep(DRAIN_SECONDS / DRAIN_STEPS)
        await super().shutdown(sockets=None)


class GracefulUvicornWorker(UvicornWorker):
    async def _serve(self):
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        install_sigquit = getattr(self, "_install_sigquit_handler", None)
        if install_sigquit is not None:
            install_sigquit()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
`;
