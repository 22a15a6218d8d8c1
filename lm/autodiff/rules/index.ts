// All gradient rules by op type.
import type { Rule } from "../rule.ts";
import { ELEMENTWISE_RULES } from "./elementwise.ts";
import { MATMUL_RULES } from "./matmul.ts";
import { NORM_RULES } from "./norm.ts";
import { SHAPE_RULES } from "./shape.ts";

export const RULES: Record<string, Rule> = {
  ...ELEMENTWISE_RULES,
  ...MATMUL_RULES,
  ...SHAPE_RULES,
  ...NORM_RULES,
};
