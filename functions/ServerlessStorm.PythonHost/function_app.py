"""ServerlessStorm's Python host: runs Python wrappers for the .NET Function app (Azure Functions, Python v2 model).

A launch arrives on the python-jobs session queue; storm_relay runs the wrapper process, its standard input comes from
the launch's session on python-input, its lines go back to the same session on python-replies, then its exit. The .NET
side records, times out, cancels and masks; this app only runs the process, and kills it at the launch's deadline
whatever happens to the .NET side.
"""

import json
import logging
import os
import time
from typing import Optional

import azure.functions as func
from azure.identity.aio import ManagedIdentityCredential
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient

import storm_relay

# The connection the trigger uses (identity-based: ServiceBusConnection__fullyQualifiedNamespace, __credential,
# __clientId); the relay's own client reads the same settings.
CONNECTION = "ServiceBusConnection"
JOBS = "python-jobs"
INPUT = "python-input"
REPLIES = "python-replies"

APP_ROOT = os.path.dirname(os.path.abspath(__file__))

app = func.FunctionApp()
_client: Optional[ServiceBusClient] = None


def service_bus() -> ServiceBusClient:
    # One connection per instance, made on first use (on the worker's event loop).
    global _client
    if _client is None:
        namespace = os.environ[f"{CONNECTION}__fullyQualifiedNamespace"]
        credential = ManagedIdentityCredential(client_id=os.environ.get(f"{CONNECTION}__clientId"))
        _client = ServiceBusClient(namespace, credential)
    return _client


def _property(message, name: str):
    properties = message.application_properties or {}
    value = properties.get(name, properties.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else value


class ServiceBusTransport:
    """The launch's session: input from python-input, lines and the exit to python-replies."""

    def __init__(self, client: ServiceBusClient, job: storm_relay.Job):
        self._client = client
        self._job = job
        self._pending = []
        self._parts = storm_relay.LineParts()

    async def __aenter__(self):
        self._receiver = self._client.get_queue_receiver(INPUT, session_id=self._job.id, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
        await self._receiver.__aenter__()
        self._renewer = AutoLockRenewer()
        self._renewer.register(self._receiver, self._receiver.session,
                               max_lock_renewal_duration=max(60.0, self._job.deadline - time.time() + 60.0))
        self._sender = self._client.get_queue_sender(REPLIES)
        await self._sender.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self._renewer.close()
        await self._sender.__aexit__(*exc)
        await self._receiver.__aexit__(*exc)

    async def receive(self):
        while True:
            while not self._pending:
                self._pending = list(await self._receiver.receive_messages(max_message_count=50, max_wait_time=5))
            message = self._pending.pop(0)
            kind = _property(message, "kind") or "line"
            if kind != "line":
                self._parts.drop()
                return (kind, "")
            line = self._parts.add(b"".join(message.body), bool(_property(message, "more")))
            if line is not None:
                return ("line", line)

    async def send_line(self, line: str) -> None:
        # Parts go one after the other: the session keeps them in order for the .NET side to join.
        parts = storm_relay.split_line(line)
        for i, part in enumerate(parts):
            properties = {"kind": "line"}
            if i < len(parts) - 1:
                properties["more"] = True
            await self._sender.send_messages(ServiceBusMessage(part, session_id=self._job.id, content_type="text/plain; charset=utf-8",
                                                               application_properties=properties))

    async def send_exit(self, exit_code, diagnostics: str) -> None:
        properties = {"kind": "exit"}
        if exit_code is not None:
            properties["exitCode"] = int(exit_code)
        await self._sender.send_messages(ServiceBusMessage(diagnostics, session_id=self._job.id, content_type="text/plain; charset=utf-8",
                                                           application_properties=properties))


@app.function_name("RunPython")
@app.service_bus_queue_trigger(arg_name="message", queue_name=JOBS, connection=CONNECTION, is_sessions_enabled=True)
async def run_python(message: func.ServiceBusMessage) -> None:
    job = storm_relay.Job.parse(json.loads(message.get_body()))
    logging.info("python launch %s (pack %s) starting", job.id, job.pack)
    async with ServiceBusTransport(service_bus(), job) as transport:
        exit_code = await storm_relay.relay(job, transport, APP_ROOT)
    logging.info("python launch %s ended: %s", job.id, "killed" if exit_code is None else f"exit {exit_code}")
