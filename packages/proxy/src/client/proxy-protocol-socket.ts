// Reading the PROXY protocol header off a newly accepted socket, before any
// greeting and before a TLS handshake. The bytes that arrived with the header
// (a pipelined command, the TLS ClientHello) go back into the socket with
// unshift(), so the session, or the TLS socket built on it, reads them first.

import type { Socket } from 'node:net';
import { ProxyHeaderReader, ProxyProtocolError, type ProxyHeader } from './proxy-protocol.js';

/**
 * The header, once complete; the socket is paused again with the rest of
 * its bytes unread. Rejects with ProxyProtocolError (invalid header, closed,
 * or nothing complete within `timeoutMs`); the caller closes the socket.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    const reader = new ProxyHeaderReader();
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    const fail = (err: ProxyProtocolError): void => {
      if (done) return;
      finish();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      let result;
      try {
        result = reader.push(chunk);
      } catch (err) {
        fail(err as ProxyProtocolError);
        return;
      }
      if (result === null) return;
      // paused before unshift: nothing is emitted until the session resumes the socket
      finish();
      if (result.rest.length > 0) socket.unshift(result.rest);
      resolve(result.header);
    };
    const onEnd = (): void => fail(new ProxyProtocolError('connection closed before the PROXY protocol header was complete', true));
    const onError = (err: Error): void => fail(new ProxyProtocolError(`connection failed before the PROXY protocol header was complete: ${err.message}`));
    const timer = setTimeout(() => fail(new ProxyProtocolError(`no complete PROXY protocol header within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  });
}
