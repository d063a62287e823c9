"""Read the weights and the node list of an ONNX file without the ``onnx`` package.

An ONNX file is one protobuf ``ModelProto`` message. Rebuilding a PyTorch model from it needs only
a small part of that message: the graph's initializers (named weight tensors), its nodes (operator,
inputs, outputs, scalar attributes) and its input/output names. This module decodes just that part
straight from the protobuf wire format, so the offline rebuild depends on numpy alone (the ``onnx``
package needs ``protobuf`` and ``ml_dtypes``, which a slim install may lack).

Field numbers follow ``onnx/onnx.proto3``: ModelProto.graph = 7; GraphProto.node = 1,
initializer = 5, input = 11, output = 12; NodeProto.input = 1, output = 2, op_type = 4,
attribute = 5; AttributeProto.name = 1, f = 2, i = 3; ValueInfoProto.name = 1; TensorProto.dims = 1,
data_type = 2, float_data = 4, int32_data = 5, int64_data = 7, name = 8, raw_data = 9,
data_location = 14.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval_kd.errors import InputError

# TensorProto.DataType -> numpy dtype (little-endian, as ONNX stores raw_data).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("?"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
}


@dataclass
class OnnxNode:
    """One operator of the graph: its type, input and output tensor names, scalar attributes."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, float | int] = field(default_factory=dict)


@dataclass
class OnnxGraph:
    """What a weight rebuild needs from an ONNX model: initializers, nodes, graph inputs/outputs."""

    initializers: dict[str, np.ndarray]
    nodes: list[OnnxNode]
    inputs: list[str]
    outputs: list[str]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field number, wire type, value)`` of one message; values of type 2 are views."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _varints(wire: int, value: int | memoryview) -> list[int]:
    """A repeated integer field's values, packed (wire type 2) or not (wire type 0)."""
    if wire == 0:
        return [_signed64(int(value))]
    out, pos, buf = [], 0, value
    while pos < len(buf):
        item, pos = _varint(buf, pos)
        out.append(_signed64(item))
    return out


def _text(value: int | memoryview) -> str:
    return bytes(value).decode("utf-8")


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    name, dims, dtype_code, raw = "", [], 1, None
    floats: list[bytes] = []
    ints: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.extend(_varints(wire, value))
        elif number == 2:
            dtype_code = int(value)
        elif number == 4:
            floats.append(bytes(value))
        elif number in (5, 7):
            ints.extend(_varints(wire, value))
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = bytes(value)
        elif number == 14 and int(value) == 1:
            raise ValueError(f"tensor {name or '?'} keeps its data in an external file")
    if dtype_code not in _DTYPES:
        raise ValueError(f"tensor {name}: unsupported ONNX data type {dtype_code}")
    dtype = _DTYPES[dtype_code]
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype)
    elif floats:
        array = np.frombuffer(b"".join(floats), dtype="<f4").astype(dtype)
    else:
        array = np.asarray(ints, dtype=dtype)
    return name, array.reshape(dims).copy()


def _node(buf: memoryview) -> OnnxNode:
    node = OnnxNode(op_type="", inputs=[], outputs=[])
    for number, _wire, value in _fields(buf):
        if number == 1:
            node.inputs.append(_text(value))
        elif number == 2:
            node.outputs.append(_text(value))
        elif number == 4:
            node.op_type = _text(value)
        elif number == 5:
            attr_name, attr_value = "", None
            for a_number, _a_wire, a_value in _fields(value):
                if a_number == 1:
                    attr_name = _text(a_value)
                elif a_number == 2:
                    attr_value = struct.unpack("<f", bytes(a_value))[0]
                elif a_number == 3:
                    attr_value = _signed64(int(a_value))
            if attr_value is not None:
                node.attributes[attr_name] = attr_value
    return node


def _value_name(buf: memoryview) -> str:
    return next((_text(v) for n, _w, v in _fields(buf) if n == 1), "")


def read_onnx(path: str | Path) -> OnnxGraph:
    """Decode an ONNX file's initializers, nodes and graph input/output names.

    Args:
        path: The ``.onnx`` file (weights stored inside it, not as external data).

    Returns:
        The graph; initializers are writable numpy arrays in their stored dtype and shape.

    Raises:
        InputError: The file is not a readable ONNX model (or keeps weights in external files).
    """
    path = Path(path)
    data = memoryview(path.read_bytes())
    graph = OnnxGraph(initializers={}, nodes=[], inputs=[], outputs=[])
    try:
        graph_buf = next((v for n, w, v in _fields(data) if n == 7 and w == 2), None)
        if graph_buf is None:
            raise ValueError("no graph in the model message")
        for number, _wire, value in _fields(graph_buf):
            if number == 1:
                graph.nodes.append(_node(value))
            elif number == 5:
                name, array = _tensor(value)
                graph.initializers[name] = array
            elif number == 11:
                graph.inputs.append(_value_name(value))
            elif number == 12:
                graph.outputs.append(_value_name(value))
    except (ValueError, IndexError, UnicodeDecodeError, struct.error) as err:
        raise InputError(f"not a readable ONNX model: {err}", path) from None
    return graph
