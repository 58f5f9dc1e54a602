// Preloaded with `node --import` by portkey.sh. The gateway's Node entry point
// (build/start-server.js) listens on every interface and has no host option;
// this makes any listen() call that names no host bind to BIND_HOST
// (default 127.0.0.1) instead, so the benchmark peer is reachable on loopback
// only. Nothing else about the server changes.
import net from 'node:net';

const host = process.env.BIND_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] !== 'string') {
      if (args.length >= 2 && (args[1] === undefined || args[1] === null)) args[1] = host;
      else args.splice(1, 0, host);
    }
  } else if (first && typeof first === 'object' && !(first instanceof net.Server) &&
             first.path === undefined && first.fd === undefined && first.handle === undefined &&
             !first._handle && !first.host) {
    // listen(options[, callback])
    args[0] = { ...first, host };
  }
  return listen.apply(this, args);
};
