"""A non-JS gRPC client for lockboxd: Debian's python3-grpcio and python3-protobuf (the C++
implementation, which refused proto-loader's synthesized map entries).

It knows nothing of lockbox's protos. It learns them over server reflection (grpc.reflection.v1),
builds them in a fresh C++ descriptor pool (which validates them as protoc would), describes
SecretsService, and invokes methods with messages made from the reflected descriptors:
health Check (no token), ListSecrets (with the token), and GetSecret of a missing secret, whose
error trailers it decodes with the protobuf runtime (google.rpc.Status with google.rpc.ErrorInfo
in grpc-status-details-bin, and x-request-id).

Usage: grpc_reflection_client.py ADDR TOKEN MISSING_NAME; prints one JSON object.
The reflection, google.rpc.Status and google.rpc.ErrorInfo messages are declared here from
their public definitions, so nothing of the server under test is trusted to describe them.
"""
import json
import sys

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation

F = descriptor_pb2.FieldDescriptorProto


def field(name, number, ftype, type_name=None, repeated=False, oneof=None):
    f = F(name=name, number=number, type=ftype, label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def message(name, *fields, oneofs=()):
    m = descriptor_pb2.DescriptorProto(name=name)
    m.field.extend(fields)
    for o in oneofs:
        m.oneof_decl.add(name=o)
    return m


def own_pool():
    """grpc.reflection.v1 plus google.rpc.Status / ErrorInfo, in a pool of this client's own."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    refl = descriptor_pb2.FileDescriptorProto(name="client/reflection.proto", package="grpc.reflection.v1", syntax="proto3")
    P = ".grpc.reflection.v1."
    refl.message_type.extend([
        message("ServerReflectionRequest",
                field("host", 1, F.TYPE_STRING),
                field("file_by_filename", 3, F.TYPE_STRING, oneof=0),
                field("file_containing_symbol", 4, F.TYPE_STRING, oneof=0),
                field("list_services", 7, F.TYPE_STRING, oneof=0),
                oneofs=["message_request"]),
        message("ServerReflectionResponse",
                field("valid_host", 1, F.TYPE_STRING),
                field("original_request", 2, F.TYPE_MESSAGE, P + "ServerReflectionRequest"),
                field("file_descriptor_response", 4, F.TYPE_MESSAGE, P + "FileDescriptorResponse", oneof=0),
                field("list_services_response", 6, F.TYPE_MESSAGE, P + "ListServiceResponse", oneof=0),
                field("error_response", 7, F.TYPE_MESSAGE, P + "ErrorResponse", oneof=0),
                oneofs=["message_response"]),
        message("FileDescriptorResponse", field("file_descriptor_proto", 1, F.TYPE_BYTES, repeated=True)),
        message("ListServiceResponse", field("service", 1, F.TYPE_MESSAGE, P + "ServiceResponse", repeated=True)),
        message("ServiceResponse", field("name", 1, F.TYPE_STRING)),
        message("ErrorResponse", field("error_code", 1, F.TYPE_INT32), field("error_message", 2, F.TYPE_STRING)),
    ])
    pool.Add(refl)
    rpc = descriptor_pb2.FileDescriptorProto(name="client/rpc.proto", package="google.rpc", syntax="proto3",
                                             dependency=["google/protobuf/any.proto"])
    entry = message("MetadataEntry", field("key", 1, F.TYPE_STRING), field("value", 2, F.TYPE_STRING))
    entry.options.map_entry = True
    info = message("ErrorInfo", field("reason", 1, F.TYPE_STRING), field("domain", 2, F.TYPE_STRING),
                   field("metadata", 3, F.TYPE_MESSAGE, ".google.rpc.ErrorInfo.MetadataEntry", repeated=True))
    info.nested_type.append(entry)
    rpc.message_type.extend([
        message("Status", field("code", 1, F.TYPE_INT32), field("message", 2, F.TYPE_STRING),
                field("details", 3, F.TYPE_MESSAGE, ".google.protobuf.Any", repeated=True)),
        info,
    ])
    pool.Add(rpc)
    return pool


def message_class(pool, full_name):
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName(full_name))


def main():
    addr, token, missing = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {"protobuf_implementation": api_implementation.Type()}
    own = own_pool()
    Req = message_class(own, "grpc.reflection.v1.ServerReflectionRequest")
    Res = message_class(own, "grpc.reflection.v1.ServerReflectionResponse")
    channel = grpc.insecure_channel(addr)
    reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                    request_serializer=Req.SerializeToString, response_deserializer=Res.FromString)

    def ask(**kw):
        (answer,) = list(reflect(iter([Req(**kw)]), timeout=30))
        if answer.HasField("error_response"):
            raise RuntimeError("reflection error: " + answer.error_response.error_message)
        return answer

    out["services"] = sorted(s.name for s in ask(list_services="*").list_services_response.service)

    # Every file the services need, built in a fresh pool (dependencies first, as C++ requires).
    pool = descriptor_pool.DescriptorPool()
    files = {}
    for name in out["services"]:
        for raw in ask(file_containing_symbol=name).file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fd.name, (fd, raw))
    added = set()

    def add(file_name):
        if file_name in added:
            return
        fd, raw = files[file_name]
        for dep in fd.dependency:
            add(dep)
        pool.AddSerializedFile(raw)
        added.add(file_name)

    for file_name in sorted(files):
        add(file_name)
    out["files"] = sorted(added)

    # Describe a service from what was built.
    service = pool.FindServiceByName("lockbox.v1.SecretsService")
    out["describe"] = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in service.methods}
    sub_paths = pool.FindMessageTypeByName("lockbox.v1.Mount").fields_by_name["sub_paths"]
    out["sub_paths_is_map"] = sub_paths.message_type.GetOptions().map_entry

    def unary(path, in_name, out_name):
        return channel.unary_unary(path, request_serializer=message_class(pool, in_name).SerializeToString,
                                   response_deserializer=message_class(pool, out_name).FromString)

    check = unary("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse")
    health = check(message_class(pool, "grpc.health.v1.HealthCheckRequest")(service="lockbox.v1.SecretsService"), timeout=30)
    out["health"] = health.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_number[health.status].name

    auth = [("authorization", "Bearer " + token)]
    list_method = service.methods_by_name["ListSecrets"]
    listing = unary("/lockbox.v1.SecretsService/ListSecrets", list_method.input_type.full_name, list_method.output_type.full_name)
    answer = listing(message_class(pool, list_method.input_type.full_name)(limit=10), metadata=auth, timeout=30)
    out["listed"] = [s.name for s in answer.secrets]

    get_method = service.methods_by_name["GetSecret"]
    get = unary("/lockbox.v1.SecretsService/GetSecret", get_method.input_type.full_name, get_method.output_type.full_name)
    try:
        get(message_class(pool, get_method.input_type.full_name)(name=missing), metadata=auth + [("x-request-id", "py-req-1")], timeout=30)
        out["error"] = None
    except grpc.RpcError as error:
        trailers = dict(error.trailing_metadata() or ())
        out["error"] = {"code": error.code().name, "details": error.details(), "request_id": trailers.get("x-request-id")}
        raw = trailers.get("grpc-status-details-bin")
        if raw is not None:
            status = message_class(own, "google.rpc.Status").FromString(raw)
            infos = []
            ErrorInfo = message_class(own, "google.rpc.ErrorInfo")
            for detail in status.details:
                if detail.type_url == "type.googleapis.com/google.rpc.ErrorInfo":
                    info = ErrorInfo.FromString(detail.value)
                    infos.append({"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)})
            out["error"]["status"] = {"code": status.code, "message": status.message, "error_info": infos}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
