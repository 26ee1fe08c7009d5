// Starts GraphiQL on the endpoint that served this page: its own URL, so it works under
// any path prefix, with subscriptions over graphql-ws on the same path. Headers typed into
// the editor (an admin secret) are not persisted.
(function start() {
  const url = new URL(location.href);
  url.search = '';
  url.hash = '';
  const socket = new URL(url);
  socket.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const fetcher = GraphiQL.createFetcher({ url: url.href, subscriptionUrl: socket.href });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }),
  );
})();
