// An h2c (HTTP/2 without TLS, prior knowledge) server on Node's own http2
// module, for agent/h2c_node_test.go: it answers every stream with its
// name, the protocol, the path and the request body, and names itself in a
// header and a trailer. Usage: node h2c-server.js NAME PORT [HOST]
'use strict';
const http2 = require('node:http2');

const [name, port, host] = process.argv.slice(2);
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const chunks = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'x-served-by': name }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-served-by-trailer': name }));
    stream.end(`${name} HTTP/2.0 ${headers[':path']} ${Buffer.concat(chunks).toString()}\n`);
  });
});
server.listen(Number(port), host || '0.0.0.0', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
