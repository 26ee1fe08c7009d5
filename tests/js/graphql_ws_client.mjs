// Subscribes through the `graphql-ws` npm client (graphql-transport-ws protocol) and
// prints one JSON line per event on stdout: {"event": "next" | "error" | "complete" |
// "closed", ...}. Exits after `count` results, on completion or on an error.
//
//   node --experimental-websocket graphql_ws_client.mjs '<json options>'
//
// options: {"url", "query", "variables"?, "headers"?, "count"?}
// The client comes from the web client's node_modules (installed by `make`).

const options = JSON.parse(process.argv[2]);
const clientModule = new URL("../../web/node_modules/graphql-ws/dist/client.js", import.meta.url);
const { createClient } = await import(clientModule.href);

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const client = createClient({
  url: options.url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  connectionParams: options.headers ? { headers: options.headers } : undefined,
  on: {
    closed: (event) => print({ event: "closed", code: event.code, reason: event.reason }),
  },
});

let received = 0;
const wanted = options.count ?? 1;
await new Promise((resolve) => {
  const unsubscribe = client.subscribe(
    { query: options.query, variables: options.variables ?? {} },
    {
      next: (value) => {
        print({ event: "next", payload: value });
        received += 1;
        if (received >= wanted) {
          unsubscribe();
          resolve();
        }
      },
      error: (error) => {
        const payload = Array.isArray(error)
          ? error
          : { message: String(error?.reason ?? error?.message ?? error), code: error?.code };
        print({ event: "error", payload });
        resolve();
      },
      complete: () => {
        print({ event: "complete" });
        resolve();
      },
    },
  );
});
await client.dispose();
