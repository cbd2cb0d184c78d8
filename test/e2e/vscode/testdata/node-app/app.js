// The node program of the VS Code tests, debugged by the built-in js-debug.
// The tests set breakpoints on the lines marked BREAK-* (which run after
// the variables they read are set), read `token` and
// `config` (the target's env value and a file only the target has), and
// send requests to the target's port 8080 that reach `handle` mirrored or
// stolen.
'use strict';
const fs = require('node:fs');
const http = require('node:http');

const token = process.env.API_TOKEN ?? '<unset>';
let config;
try {
  config = fs.readFileSync('/etc/inventory/config.json', 'utf8');
} catch (e) {
  config = `<error: ${e.message}>`;
}
const loaded = `${token.length}:${config.length}`; // BREAK-LOADED
console.log(`app: API_TOKEN=${token} config=${config.length} bytes (${loaded})`);

function handle(req, res) {
  const seen = `${req.method} ${req.url}`;
  console.log(`app: got ${seen}`); // BREAK-REQUEST
  res.setHeader('content-type', 'text/plain');
  res.end(`from the debuggee: ${seen}\n`);
}

const port = Number(process.env.APP_PORT ?? 8080);
http.createServer(handle).listen(port, () => console.log(`app: listening on ${port}`));
