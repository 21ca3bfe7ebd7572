"""httpcore's connection pool, with its bookkeeping pass made linear.

httpcore runs ``_assign_requests_to_connections`` each time a request starts or ends. Its
keep-alive check builds a list of every connection for each idle connection, only to
take that list's length: with 16 downloads in flight that was 1,100 ``is_idle`` calls per
request, about a tenth of a worker's CPU on a re-run that revalidates (upstream:
encode/httpcore#1035, open). This is the same pass (httpcore 1.0.9, pinned in the lock)
with ``len(self._connections)`` in that place, the number the list's length always was.
Written by hand because no release of httpcore has the fix.
"""

from __future__ import annotations

import httpcore


class LinearPool(httpcore.AsyncConnectionPool):
    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing_connections = []

        # Drop closed connections; close expired ones and idle ones over the keep-alive
        # limit (counting every connection, as httpcore does).
        for connection in list(self._connections):
            if connection.is_closed():
                self._connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(self._connections) > self._max_keepalive_connections
            ):
                self._connections.remove(connection)
                closing_connections.append(connection)

        # Assign queued requests: an available connection to the origin, else a new one
        # while under the limit, else a new one in place of an idle one.
        queued_requests = [request for request in self._requests if request.is_queued()]
        for pool_request in queued_requests:
            origin = pool_request.request.url.origin
            available_connections = [
                connection
                for connection in self._connections
                if connection.can_handle_request(origin) and connection.is_available()
            ]
            if available_connections:
                pool_request.assign_to_connection(available_connections[0])
                continue
            if len(self._connections) >= self._max_connections:
                idle_connections = [c for c in self._connections if c.is_idle()]
                if not idle_connections:
                    continue
                self._connections.remove(idle_connections[0])
                closing_connections.append(idle_connections[0])
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)

        return closing_connections
