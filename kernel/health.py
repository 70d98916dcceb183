"""The gRPC health service (grpc.health.v1) on a port of its own, for Kubernetes probes.

grpcio runs its own threads, so it never touches the asyncio loop that
serves Cap'n Proto; the kernel only flips the status.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "aos.kernel"


class HealthEndpoint:
    def __init__(self, address: str) -> None:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="aos-health"))
        self._servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        host, _, port = address.rpartition(":")
        try:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:  # grpcio raises when it cannot bind (older versions returned 0)
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {address} for the health endpoint (the port is in use, or the "
                          "address is not this host's)")
        self.address = f"{host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        for name in ("", SERVICE):
            self._servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        self._servicer.enter_graceful_shutdown()
        self._server.stop(grace=1).wait()
