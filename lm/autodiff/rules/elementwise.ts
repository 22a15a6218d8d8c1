// Gradient rules for elementwise ops (with numpy broadcasting on the binary ones).
import type { Rule, RuleContext } from "../rule.ts";

const unary = (f: (c: RuleContext, g: string) => string): Rule => (c) => {
  const g = c.gy(0)!;
  return [f(c, g)];
};

const maskedGrads = (c: RuleContext, masks: string[]) => {
  const g = c.gy(0)!, zero = c.scalar(0, c.y(0));
  return masks.map((
    m,
    i,
  ) => (c.needs(i) ? c.unbroadcast(c.op("Where", [m, g, zero]), c.x(i)) : null));
};

/** Max/Min: the gradient goes to the first input that attains the result (ties: first wins). */
const extremum: Rule = (c) => {
  const n = c.node.input!.length;
  const masks: string[] = [];
  let taken: string | null = null;
  for (let i = 0; i < n; i++) {
    let m = c.op("Equal", [c.x(i), c.y(0)]);
    if (taken) m = c.op("And", [m, c.op("Not", [taken])]);
    taken = taken ? c.op("Or", [taken, m]) : m;
    masks.push(m);
  }
  return maskedGrads(c, masks);
};

export const ELEMENTWISE_RULES: Record<string, Rule> = {
  Identity: unary((_c, g) => g),
  Neg: unary((c, g) => c.op("Neg", [g])),
  Cast: unary((c, g) => c.op("Cast", [g], { to: c.dtype(c.x(0)) })),
  Add: (c) => {
    const g = c.gy(0)!;
    return [
      c.needs(0) ? c.unbroadcast(g, c.x(0)) : null,
      c.needs(1) ? c.unbroadcast(g, c.x(1)) : null,
    ];
  },
  Sum: (c) => {
    const g = c.gy(0)!;
    return c.node.input!.map((_, i) => (c.needs(i) ? c.unbroadcast(g, c.x(i)) : null));
  },
  Sub: (c) => {
    const g = c.gy(0)!;
    return [
      c.needs(0) ? c.unbroadcast(g, c.x(0)) : null,
      c.needs(1) ? c.unbroadcast(c.op("Neg", [g]), c.x(1)) : null,
    ];
  },
  Mul: (c) => {
    const g = c.gy(0)!;
    return [
      c.needs(0) ? c.unbroadcast(c.op("Mul", [g, c.x(1)]), c.x(0)) : null,
      c.needs(1) ? c.unbroadcast(c.op("Mul", [g, c.x(0)]), c.x(1)) : null,
    ];
  },
  Div: (c) => {
    const g = c.gy(0)!;
    return [
      c.needs(0) ? c.unbroadcast(c.op("Div", [g, c.x(1)]), c.x(0)) : null,
      // d(a/b)/db = −(a/b)/b
      c.needs(1)
        ? c.unbroadcast(c.op("Neg", [c.op("Mul", [g, c.op("Div", [c.y(0), c.x(1)])])]), c.x(1))
        : null,
    ];
  },
  Pow: (c) => {
    const g = c.gy(0)!, a = c.x(0), e = c.x(1);
    let ga: string | null = null;
    if (c.needs(0)) {
      const ev = c.needs(1) ? null : c.value(e);
      let d: string;
      if (ev && ev.length === 1 && ev[0] === 2) d = c.op("Mul", [a, c.scalar(2, a)]);
      else if (ev && ev.length === 1 && ev[0] === 1) d = c.scalar(1, a);
      else if (ev && ev.length === 1) {
        d = c.op("Mul", [c.op("Pow", [a, c.scalar(ev[0] - 1, a)]), c.scalar(ev[0], a)]);
      } else {
        const ef = c.dtype(e) === c.dtype(a) ? e : c.op("Cast", [e], { to: c.dtype(a) });
        d = c.op("Mul", [c.op("Pow", [a, c.op("Sub", [ef, c.scalar(1, a)])]), ef]);
      }
      ga = c.unbroadcast(c.op("Mul", [g, d]), a);
    }
    const ge = c.needs(1)
      ? c.unbroadcast(c.op("Mul", [g, c.op("Mul", [c.y(0), c.op("Log", [a])])]), e)
      : null;
    return [ga, ge];
  },
  Sqrt: unary((c, g) => c.op("Div", [c.op("Mul", [g, c.scalar(0.5, c.y(0))]), c.y(0)])),
  Reciprocal: unary((c, g) => c.op("Neg", [c.op("Mul", [g, c.op("Mul", [c.y(0), c.y(0)])])])),
  Exp: unary((c, g) => c.op("Mul", [g, c.y(0)])),
  Log: unary((c, g) => c.op("Div", [g, c.x(0)])),
  Tanh: unary((c, g) =>
    c.op("Mul", [g, c.op("Sub", [c.scalar(1, c.y(0)), c.op("Mul", [c.y(0), c.y(0)])])])
  ),
  Sigmoid: unary((c, g) =>
    c.op("Mul", [g, c.op("Mul", [c.y(0), c.op("Sub", [c.scalar(1, c.y(0)), c.y(0)])])])
  ),
  Erf: unary((c, g) => {
    const x = c.x(0);
    const e = c.op("Exp", [c.op("Neg", [c.op("Mul", [x, x])])]);
    return c.op("Mul", [g, c.op("Mul", [e, c.scalar(2 / Math.sqrt(Math.PI), x)])]);
  }),
  Sin: unary((c, g) => c.op("Mul", [g, c.op("Cos", [c.x(0)])])),
  Cos: unary((c, g) => c.op("Neg", [c.op("Mul", [g, c.op("Sin", [c.x(0)])])])),
  Relu: (c) => maskedGrads(c, [c.op("Greater", [c.x(0), c.scalar(0, c.x(0))])]),
  Where: (c) => {
    const g = c.gy(0)!, zero = c.scalar(0, c.y(0)), cond = c.x(0);
    return [
      null,
      c.needs(1) ? c.unbroadcast(c.op("Where", [cond, g, zero]), c.x(1)) : null,
      c.needs(2) ? c.unbroadcast(c.op("Where", [cond, zero, g]), c.x(2)) : null,
    ];
  },
  Max: extremum,
  Min: extremum,
};
