// drizzle-kit: `deno task db:generate` writes SQL migrations for db/schema.ts into db/migrations/.
export default {
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
};
