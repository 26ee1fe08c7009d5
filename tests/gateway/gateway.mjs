// A real Apollo gateway for tests/test_gateway.py: composes the subgraphs named in
// SUBGRAPHS (JSON: [{"name", "url"}]) with IntrospectAndCompose, on 127.0.0.1:PORT.
// The headers that carry credentials go from each client request to every subgraph
// request, so the service answers under the caller's role. Prints "ready <url>" once
// it listens; composition errors end the process with them on stderr.
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { ApolloGateway, IntrospectAndCompose, RemoteGraphQLDataSource } from "@apollo/gateway";

const FORWARDED = ["authorization", "x-hasura-admin-secret", "x-hasura-role"];

const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({
    subgraphs: JSON.parse(process.env.SUBGRAPHS),
    introspectionHeaders: JSON.parse(process.env.INTROSPECTION_HEADERS || "{}"),
  }),
  buildService({ url }) {
    return new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request, context }) {
        for (const name of FORWARDED) {
          const value = context.headers?.[name];
          if (value) request.http.headers.set(name, value);
        }
      },
    });
  },
});

const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT) },
  context: async ({ req }) => ({ headers: req.headers }),
});
console.log(`ready ${url}`);
