// Adds `Authorization: Bearer $CONFORMANCE_BEARER` to every HTTP request the conformance
// runner makes (global fetch and the undici package share the global dispatcher).
import { createRequire } from 'node:module';
import path from 'node:path';
const require = createRequire(path.join(process.cwd(), 'node_modules', 'x.js'));
const { Agent, setGlobalDispatcher } = require('undici');
const token = process.env.CONFORMANCE_BEARER;
if (token) {
  const value = `Bearer ${token}`;
  class AuthAgent extends Agent {
    dispatch(opts, handler) {
      let h = opts.headers;
      if (h == null) h = { authorization: value };
      else if (Array.isArray(h)) {
        if (h.length && Array.isArray(h[0])) h = [...h, ['authorization', value]];
        else h = [...h, 'authorization', value];
      } else if (typeof h[Symbol.iterator] === 'function' && !(typeof h === 'string')) {
        h = [...h, ['authorization', value]];
      } else h = { ...h, authorization: value };
      return super.dispatch({ ...opts, headers: h }, handler);
    }
  }
  setGlobalDispatcher(new AuthAgent());
}

// Some scenarios (http-header-validation, dns-rebinding-protection) use node:http directly.
import http from 'node:http';
if (token) {
  const value = `Bearer ${token}`;
  const orig = http.request;
  http.request = function (...args) {
    const i = typeof args[0] === 'object' && !(args[0] instanceof URL) ? 0
      : (typeof args[1] === 'object' && typeof args[1] !== 'function' ? 1 : -1);
    if (i >= 0) {
      const o = { ...args[i] };
      const h = o.headers;
      if (Array.isArray(h)) o.headers = [...h, 'authorization', value];
      else o.headers = { ...(h || {}), authorization: value };
      args[i] = o;
    } else {
      args.splice(1, 0, { headers: { authorization: value } });
    }
    return orig.apply(this, args);
  };
}
