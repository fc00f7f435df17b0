"""A non-Rust client of crow: Python's standard gRPC stack, with no .proto file and no generated code.

It discovers crow's API through server reflection (grpcio-reflection's descriptor database speaks
grpc.reflection.v1alpha), builds the request message from the discovered descriptor, calls the method
named on the command line with a bearer token, and prints one JSON object: the services it found and
the response as JSON.

    python reflect.py ADDR TOKEN crow.v1.InteractionService/GetSummary '{"organizationId": "acme"}'
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    addr, token, method, request_json = sys.argv[1:5]
    channel = grpc.insecure_channel(addr)
    database = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(database.get_services())
    pool = descriptor_pool.DescriptorPool(database)
    service_name, method_name = method.split("/")
    method_desc = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method_desc.input_type)
    response_class = message_factory.GetMessageClass(method_desc.output_type)
    request = json_format.Parse(request_json, request_class())
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    try:
        response = call(request, metadata=[("authorization", f"Bearer {token}")], timeout=30)
        result = {"response": json_format.MessageToDict(response)}
    except grpc.RpcError as e:
        result = {"error": {"code": e.code().name, "message": e.details()}}
    print(json.dumps({"services": services, **result}))


if __name__ == "__main__":
    main()
