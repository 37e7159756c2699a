#!/usr/bin/env node
/**
 * The container's HEALTHCHECK: GET /health on this node's client port
 * (RAFTKV_LISTEN_CLIENT's port, on 127.0.0.1); exit 0 when it answers 200.
 * With client TLS (RAFTKV_CLIENT_CERT_FILE) it speaks HTTPS, verifies the
 * node against RAFTKV_CLIENT_CA_FILE or RAFTKV_PEER_CA_FILE, and presents the
 * node's own certificate (node certificates are client certificates too), so
 * it also works when --client-ca-file requires one.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const env = process.env;
const port = Number((env.RAFTKV_LISTEN_CLIENT ?? '127.0.0.1:7379').split(':').at(-1));
const certFile = env.RAFTKV_CLIENT_CERT_FILE;
const keyFile = env.RAFTKV_CLIENT_KEY_FILE;
const caFile = env.RAFTKV_CLIENT_CA_FILE ?? env.RAFTKV_PEER_CA_FILE;

const options = { host: '127.0.0.1', port, path: '/health', timeout: 2500 };
const req =
  certFile && keyFile
    ? https.get({
        ...options,
        cert: readFileSync(certFile),
        key: readFileSync(keyFile),
        ...(caFile ? { ca: readFileSync(caFile) } : {}),
      })
    : http.get(options);
req.on('response', (res) => process.exit(res.statusCode === 200 ? 0 : 1));
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', () => process.exit(1));
