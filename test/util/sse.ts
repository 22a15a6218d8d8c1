// A minimal SSE reader over a fetch Response (what a notebook client does).
import { readSseStream } from "../../lib/sse.js";

export interface Sse {
  id: number;
  event: string;
  data: unknown;
}

export async function readSse(res: Response): Promise<Sse[]> {
  const out: Sse[] = [];
  if (!res.body) return out;
  for await (const m of readSseStream(res.body)) {
    if (m.id) out.push({ id: Number(m.id), event: m.event ?? "", data: JSON.parse(m.data ?? "") });
  }
  return out;
}
