"""Runs inside the Azure IoT SDK virtualenv (not collected by pytest, not imported by tests).

It wires the SDK's own pipeline stages together — twin request/response, request
coordination, and the IoT Hub MQTT translation stage — with a capture stage at the bottom
instead of a transport, so every topic and CONNECT field is produced (and every inbound
topic parsed) by exactly the code a real device runs. Nothing touches the network.
Input: one JSON argument; output: one JSON document on stdout.
"""

import itertools
import json
import sys
import uuid

from azure.iot.device.common.pipeline import (
    pipeline_events_mqtt,
    pipeline_nucleus,
    pipeline_ops_base,
    pipeline_stages_base,
    pipeline_thread,
)
from azure.iot.device.iothub.models import Message, MethodResponse
from azure.iot.device.iothub.pipeline import (
    config,
    pipeline_ops_iothub,
    pipeline_stages_iothub,
    pipeline_stages_iothub_mqtt,
)
from azure.iot.device.iothub.pipeline import constant as features

ARGS = json.loads(sys.argv[1])
_RIDS = iter(ARGS["twin_rids"])
# The request stage names twin requests with uuid4(); make them the ones the test expects.
pipeline_stages_base.uuid = type("U", (), {"uuid4": staticmethod(lambda: uuid.UUID(next(_RIDS)))})


class Capture(pipeline_stages_base.PipelineStage):
    def __init__(self):
        super().__init__()
        self.ops = []

    @pipeline_thread.runs_on_pipeline_thread
    def _run_op(self, op):
        self.ops.append(op)


class Top(pipeline_stages_base.PipelineStage):
    def __init__(self):
        super().__init__()
        self.events = []

    @pipeline_thread.runs_on_pipeline_thread
    def handle_pipeline_event(self, event):
        self.events.append(event)


def pipeline(device_id, module_id=None, product_info=""):
    cfg = config.IoTHubPipelineConfig(
        hostname=ARGS["host"],
        device_id=device_id,
        module_id=module_id,
        product_info=product_info,
        sastoken=object(),
    )
    nucleus = pipeline_nucleus.PipelineNucleus(cfg)
    stages = [
        Top(),
        pipeline_stages_iothub.TwinRequestResponseStage(),
        pipeline_stages_base.CoordinateRequestAndResponseStage(),
        pipeline_stages_iothub_mqtt.IoTHubMQTTTranslationStage(),
        Capture(),
    ]
    for upper, lower in itertools.pairwise(stages):
        upper.next = lower
        lower.previous = upper
    for stage in stages:
        stage.nucleus = nucleus
    return stages


def _ignore(op, error):
    pass


def connect_fields(device_id, module_id, product_info):
    stages = pipeline(device_id, module_id, product_info)
    stages[1].run_op(pipeline_ops_base.InitializePipelineOperation(callback=_ignore))
    op = stages[-1].ops[-1]
    return {"client_id": op.client_id, "username": op.username}


def telemetry_topic(device_id, module_id, spec):
    stages = pipeline(device_id, module_id)
    message = Message(b"{}")
    for name in ("message_id", "correlation_id", "user_id", "content_type", "content_encoding"):
        setattr(message, name, spec.get(name))
    message.expiry_time_utc = spec.get("expiry_time_utc")
    if spec.get("security"):
        message.set_as_security_message()
    message.custom_properties = dict(spec.get("custom", {}))
    op = pipeline_ops_iothub.SendD2CMessageOperation(message=message, callback=_ignore)
    stages[1].run_op(op)
    return stages[-1].ops[-1].topic


def deliver(stages, topic, payload):
    """Hand an inbound PUBLISH to the SDK; return the event that reached the top, if any."""
    before = len(stages[0].events)
    stages[-2].handle_pipeline_event(
        pipeline_events_mqtt.IncomingMQTTMessageEvent(topic=topic, payload=payload)
    )
    return stages[0].events[-1] if len(stages[0].events) > before else None


def c2d_message(device_id, topic):
    message = deliver(pipeline(device_id), topic, b"hi").message
    names = ("message_id", "correlation_id", "user_id", "content_type", "content_encoding")
    out = {name: getattr(message, name) for name in names}
    out.update(
        expiry_time_utc=message.expiry_time_utc, ack=message.ack, custom=message.custom_properties
    )
    return out


def subscriptions(device_id, module_id):
    stages = pipeline(device_id, module_id)
    first = features.INPUT_MSG if module_id else features.C2D_MSG
    topics = []
    for feature in (first, features.METHODS, features.TWIN, features.TWIN_PATCHES):
        stages[1].run_op(pipeline_ops_base.EnableFeatureOperation(feature, callback=_ignore))
        topics.append(stages[-1].ops[-1].topic)
    return topics


def twin_and_methods(device_id):
    stages = pipeline(device_id)
    out = {"completions": []}

    def done(op, error):
        out["completions"].append(
            {"error": None if error is None else str(error), "twin": getattr(op, "twin", None)}
        )

    stages[1].run_op(pipeline_ops_iothub.GetTwinOperation(callback=done))
    out["twin_get"] = stages[-1].ops[-1].topic
    patch = pipeline_ops_iothub.PatchTwinReportedPropertiesOperation(patch={"a": 1}, callback=done)
    stages[1].run_op(patch)
    out["twin_patch"] = stages[-1].ops[-1].topic
    response = MethodResponse(ARGS["method_rid"], ARGS["method_status"], {"ok": True})
    stages[1].run_op(pipeline_ops_iothub.SendMethodResponseOperation(response, callback=_ignore))
    out["method_response"] = stages[-1].ops[-1].topic
    # Answer the two twin requests on the topics the test built with wellguard.
    deliver(stages, ARGS["twin_get_response"], b'{"desired": {}, "reported": {}}')
    deliver(stages, ARGS["twin_patch_response"], b"")
    event = deliver(stages, ARGS["method_request"], b'{"x": 1}')
    out["method_request"] = {
        "name": event.method_request.name,
        "rid": event.method_request.request_id,
        "payload": event.method_request.payload,
    }
    event = deliver(stages, ARGS["desired_patch"], b'{"t": 5, "$version": 7}')
    out["desired_patch"] = {"type": type(event).__name__, "patch": event.patch}
    return out


@pipeline_thread.invoke_on_pipeline_thread
def main():
    return {
        "connect": [connect_fields(*args) for args in ARGS["connect"]],
        "telemetry": [telemetry_topic(*args) for args in ARGS["telemetry"]],
        "c2d": [c2d_message(*args) for args in ARGS["c2d"]],
        "twin_and_methods": twin_and_methods(ARGS["device"]),
        "subscribe": {
            "device": subscriptions(ARGS["device"], None),
            "module": subscriptions(ARGS["device"], ARGS["module"]),
        },
    }


print(json.dumps(main()))
