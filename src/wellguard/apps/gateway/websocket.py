"""MQTT over WebSockets at ``/$iothub/websocket`` on the HTTPS port (sub-protocol
``mqtt``), as IoT Hub serves it and the device SDK's ``websockets=True`` expects."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from wellguard.apps.gateway.connection import DeviceConnection

__all__ = ["router"]

_log = logging.getLogger("wellguard.gateway")

router = APIRouter()


@router.websocket("/$iothub/websocket")
async def mqtt_over_websocket(websocket: WebSocket) -> None:
    """Bridge WebSocket binary frames to a device connection."""
    server = getattr(websocket.app.state, "gateway", None)
    requested = websocket.scope.get("subprotocols", [])
    if server is None or "mqtt" not in requested:
        await websocket.close(code=1002)
        return
    await websocket.accept(subprotocol="mqtt")
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
    conn = DeviceConnection(server)
    client = websocket.client
    peer = (client.host, client.port) if client else ("unknown", 0)
    if not conn.start_plain(peer, outgoing.put_nowait, lambda: outgoing.put_nowait(None)):
        await websocket.close(code=1008)
        return

    async def pump_out() -> None:
        while True:
            data = await outgoing.get()
            if data is None:
                with contextlib.suppress(Exception):
                    await websocket.close()
                return
            await websocket.send_bytes(data)

    sender = asyncio.get_running_loop().create_task(pump_out())
    try:
        while not conn.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data:
                conn.data_received(data)
    except WebSocketDisconnect:
        pass
    finally:
        conn.closed = True
        outgoing.put_nowait(None)
        with contextlib.suppress(Exception):
            await sender
        conn.connection_lost(None)
