// One pg-core schema for both drivers: embedded PGlite (default) and PostgreSQL (DATABASE_URL).
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

const created = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

export const models = pgTable("models", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  path: text("path").notNull(),
  /** Hook points and shapes as found when registered. */
  info: jsonb("info"),
  builtin: boolean("builtin").notNull().default(false),
  createdAt: created(),
});

export const saes = pgTable("saes", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  /** Directory in SAELens layout (sae_weights.safetensors + cfg.json). */
  path: text("path").notNull(),
  architecture: text("architecture").notNull(),
  dIn: integer("d_in").notNull(),
  dSae: integer("d_sae").notNull(),
  modelId: text("model_id"),
  hook: text("hook"),
  cfg: jsonb("cfg"),
  /** The job that produced it, if any. */
  jobId: text("job_id"),
  createdAt: created(),
});

export const datasets = pgTable("datasets", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  kind: text("kind").notNull(),
  path: text("path"),
  config: jsonb("config"),
  builtin: boolean("builtin").notNull().default(false),
  createdAt: created(),
});

export const jobs = pgTable("jobs", {
  id: text("id").primaryKey(),
  kind: text("kind").notNull(),
  state: text("state").notNull(),
  config: jsonb("config"),
  result: jsonb("result"),
  error: text("error"),
  checkpoint: text("checkpoint"),
  cancelRequested: boolean("cancel_requested").notNull().default(false),
  /** How many times a worker has claimed the job; bounded, so a job that kills its process ends. */
  attempts: integer("attempts").notNull().default(0),
  leaseOwner: text("lease_owner"),
  leaseExpires: timestamp("lease_expires", { withTimezone: true }),
  createdAt: created(),
  startedAt: timestamp("started_at", { withTimezone: true }),
  finishedAt: timestamp("finished_at", { withTimezone: true }),
}, (t) => [index("jobs_state_created").on(t.state, t.createdAt)]);

/** The SSE history: every event a job emitted, with ids increasing per job. */
export const jobEvents = pgTable("job_events", {
  jobId: text("job_id").notNull(),
  seq: integer("seq").notNull(),
  type: text("type").notNull(),
  data: jsonb("data"),
  createdAt: created(),
}, (t) => [primaryKey({ columns: [t.jobId, t.seq] })]);

export const metrics = pgTable("metrics", {
  jobId: text("job_id").notNull(),
  step: integer("step").notNull(),
  tokens: bigint("tokens", { mode: "number" }),
  values: jsonb("values").notNull(),
  createdAt: created(),
}, (t) => [primaryKey({ columns: [t.jobId, t.step] })]);

export const evals = pgTable("evals", {
  id: text("id").primaryKey(),
  jobId: text("job_id"),
  saeId: text("sae_id"),
  modelId: text("model_id"),
  config: jsonb("config"),
  result: jsonb("result"),
  createdAt: created(),
});

export const experiments = pgTable("experiments", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  jobId: text("job_id"),
  config: jsonb("config"),
  result: jsonb("result"),
  createdAt: created(),
});

export const artifacts = pgTable("artifacts", {
  id: text("id").primaryKey(),
  jobId: text("job_id"),
  kind: text("kind").notNull(),
  path: text("path").notNull(),
  bytes: bigint("bytes", { mode: "number" }),
  createdAt: created(),
});
