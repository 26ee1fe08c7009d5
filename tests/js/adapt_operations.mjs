// Adapts operations written in Hasura's default names with the web client's adapter
// (web/app/lib/names.js), for tests/test_web_names.py. Reads {"map": <the server's
// /v1/graphql/names>, "operations": [{"query", "variables", "answer"?}]} on stdin and prints
// the adapted operations as a JSON list of {"query", "variables", "data"?}: `data` is the
// operation's `answer` (the served `data`) in the shape the operation was written for.
const adapterModule = new URL("../../web/app/lib/names.js", import.meta.url);
const { createAdapter } = await import(adapterModule.href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { map, operations } = JSON.parse(input);
const adapter = await createAdapter(map);
const adapted = operations.map((op) => {
  const { query, variables, data } = adapter.operation(op.query, op.variables);
  return "answer" in op ? { query, variables, data: data(op.answer) } : { query, variables };
});
console.log(JSON.stringify(adapted));
