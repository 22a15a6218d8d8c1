// A small builder for test ONNX graphs (opset 17 by default).
import { makeNode } from "../../lm/graph.ts";
import {
  DataType,
  type ModelProto,
  type NodeProto,
  onnx,
  type TensorProto,
  type ValueInfoProto,
} from "../../lm/onnx.ts";
import { tensorToProto } from "../../lm/autodiff/eval.ts";

export type Attr = number | number[] | string | TensorProto;
export type Dim = number | string;

export class GraphBuilder {
  nodes: NodeProto[] = [];
  inputs: ValueInfoProto[] = [];
  outputs: ValueInfoProto[] = [];
  inits: TensorProto[] = [];
  private n = 0;
  constructor(readonly dtype: number = DataType.DOUBLE, readonly opset = 17) {}

  input(name: string, dims: Dim[], dtype = this.dtype): string {
    this.inputs.push(valueInfo(name, dims, dtype));
    return name;
  }
  init(name: string, dims: number[], values: ArrayLike<number>, dtype = this.dtype): string {
    this.inits.push(tensorToProto(name, dtype, dims, values));
    return name;
  }
  ints(values: number[]): string {
    return this.constant(DataType.INT64, [values.length], values);
  }
  scalar(v: number, dtype = this.dtype): string {
    return this.constant(dtype, [], [v]);
  }
  constant(dtype: number, dims: number[], values: ArrayLike<number>): string {
    return this.node("Constant", [], { value: tensorToProto("c", dtype, dims, values) });
  }
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    nOut = 1,
    domain?: string,
  ): string {
    return this.nodeN(op, inputs, attrs, nOut, domain)[0];
  }
  nodeN(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    nOut = 1,
    domain?: string,
  ): string[] {
    const outs = Array.from({ length: nOut }, () => `t${this.n++}_${op}`);
    this.nodes.push(makeNode(op, inputs, outs, attrs, `n${this.n}_${op}`, domain));
    return outs;
  }
  output(name: string, dims: Dim[] = [], dtype = this.dtype): void {
    this.outputs.push(valueInfo(name, dims, dtype));
  }
  /** Renames tensor `from` (a node output) to `to`. */
  rename(from: string, to: string): string {
    for (const n of this.nodes) {
      n.output = n.output!.map((o) => (o === from ? to : o));
      n.input = n.input!.map((o) => (o === from ? to : o));
    }
    return to;
  }
  build(): ModelProto {
    return onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: this.opset }],
      producerName: "splice-test",
      graph: {
        name: "g",
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.inits,
      },
    });
  }
}

function valueInfo(name: string, dims: Dim[], dtype: number): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: dtype,
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}
