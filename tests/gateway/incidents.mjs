// A second subgraph for tests/test_gateway.py: incidents, each pointing at an
// invocation of the event-detector service by id (a Federation 2 entity reference;
// INVOCATION_TYPE names the service's entity type, whatever its customization). The
// incidents come from INCIDENTS (JSON: [{"id", "title", "invocationId"}]). Listens on
// 127.0.0.1:PORT and prints "ready <url>".
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { parse } from "graphql";

const invocationType = process.env.INVOCATION_TYPE;
const incidents = JSON.parse(process.env.INCIDENTS);

const typeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

  scalar uuid

  type Query {
    incidents: [Incident!]!
  }

  type Incident {
    id: ID!
    title: String!
    invocation: ${invocationType}!
  }

  type ${invocationType} @key(fields: "id", resolvable: false) {
    id: uuid!
  }
`);

const resolvers = {
  Query: { incidents: () => incidents },
  Incident: { invocation: (incident) => ({ __typename: invocationType, id: incident.invocationId }) },
};

const server = new ApolloServer({ schema: buildSubgraphSchema([{ typeDefs, resolvers }]) });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT) },
});
console.log(`ready ${url}`);
