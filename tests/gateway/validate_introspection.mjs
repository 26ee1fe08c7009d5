// Reads {"<label>": <introspection result data>, ...} on stdin and builds each with
// graphql-js (buildClientSchema, assertValidSchema), as a Hasura that adds the service
// as a Remote Schema (or any graphql-js tool) would. Prints one JSON object: the labels
// that failed, with graphql-js's message; empty when every schema is valid.
import { assertValidSchema, buildClientSchema } from "graphql";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const failures = {};
for (const [label, introspection] of Object.entries(JSON.parse(input))) {
  try {
    assertValidSchema(buildClientSchema(introspection));
  } catch (error) {
    failures[label] = String(error.message || error);
  }
}
console.log(JSON.stringify(failures));
