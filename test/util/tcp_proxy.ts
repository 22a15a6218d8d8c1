// A loopback TCP proxy a test can cut: drop() closes every connection and stops listening (what a
// client sees when the server restarts), resume() listens again on the same port.
export class TcpProxy {
  #listener: Deno.TcpListener | null = null;
  #conns = new Set<Deno.Conn>();
  readonly port: number;

  constructor(readonly target: number) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (l.addr as Deno.NetAddr).port;
    this.#serve(l);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  #serve(l: Deno.TcpListener): void {
    this.#listener = l;
    (async () => {
      for await (const client of l) {
        this.#conns.add(client);
        Deno.connect({ hostname: "127.0.0.1", port: this.target }).then((upstream) => {
          this.#conns.add(upstream);
          const pipe = (a: Deno.Conn, b: Deno.Conn) =>
            a.readable.pipeTo(b.writable).catch(() => {}).finally(() => {
              for (const c of [a, b]) {
                try {
                  c.close();
                } catch { /* already closed */ }
                this.#conns.delete(c);
              }
            });
          pipe(client, upstream);
          pipe(upstream, client);
        }).catch(() => client.close());
      }
    })().catch(() => {});
  }

  drop(): void {
    this.#listener?.close();
    this.#listener = null;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    this.#conns.clear();
  }

  resume(): void {
    if (!this.#listener) this.#serve(Deno.listen({ hostname: "127.0.0.1", port: this.port }));
  }
}
