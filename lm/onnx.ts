// ONNX protobuf I/O through onnx-proto (protobufjs). The IR everywhere in lm/ is onnx.ModelProto
// as decoded here: graph surgery and autodiff edit these objects and re-encode them.
import onnxProto from "onnx-proto";

// deno-lint-ignore no-explicit-any
export const onnx: typeof import("onnx-proto").onnx = (onnxProto as any).onnx;
export type ModelProto = import("onnx-proto").onnx.ModelProto;
export type GraphProto = import("onnx-proto").onnx.IGraphProto;
export type NodeProto = import("onnx-proto").onnx.INodeProto;
export type TensorProto = import("onnx-proto").onnx.ITensorProto;
export type ValueInfoProto = import("onnx-proto").onnx.IValueInfoProto;
export type AttributeProto = import("onnx-proto").onnx.IAttributeProto;

export const DataType = onnx.TensorProto.DataType;

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
