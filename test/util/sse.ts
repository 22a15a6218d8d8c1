// A minimal SSE reader over a fetch Response (what a notebook client does).

export interface Sse {
  id: number;
  event: string;
  data: unknown;
}

export async function readSse(res: Response): Promise<Sse[]> {
  const text = await res.text();
  const out: Sse[] = [];
  for (const block of text.split("\n\n")) {
    const fields: Record<string, string> = {};
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      fields[line.slice(0, i)] = (fields[line.slice(0, i)] ? fields[line.slice(0, i)] + "\n" : "") +
        line.slice(i + 2);
    }
    if (fields.id) {
      out.push({ id: Number(fields.id), event: fields.event, data: JSON.parse(fields.data) });
    }
  }
  return out;
}
