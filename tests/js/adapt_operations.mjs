// Adapts operations written in Hasura's default names with the web client's adapter
// (web/app/lib/names.js), for tests/test_web_names.py. Reads {"map": <the server's
// /v1/graphql/names>, "operations": [{"query", "variables"}]} on stdin and prints the
// adapted operations as a JSON list of {"query", "variables"}.
const adapterModule = new URL("../../web/app/lib/names.js", import.meta.url);
const { createAdapter } = await import(adapterModule.href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { map, operations } = JSON.parse(input);
const adapter = createAdapter(map);
console.log(JSON.stringify(operations.map((op) => adapter.operation(op.query, op.variables))));
