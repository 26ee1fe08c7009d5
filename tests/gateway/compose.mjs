// Composes subgraph SDLs with Apollo's Federation 2 composition, as a gateway or
// router would. Reads {"<subgraph name>": "<sdl>", ...} on stdin; prints a JSON list
// of the composition errors (empty when the subgraphs compose).
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const services = Object.entries(JSON.parse(input)).map(([name, sdl]) => ({
  name,
  url: `http://127.0.0.1/${name}`,
  typeDefs: parse(sdl),
}));
const result = composeServices(services);
console.log(JSON.stringify((result.errors || []).map((error) => error.message)));
