// STARTTLS from the client (RFC 9051 §6.2.1), offered only when
// client_tls_cert_file is set and client_starttls is yes; otherwise it gets
// what the original said to it, `BAD Please login first` (SPEC §4.4).

import type { PreauthCommand } from '../command.js';

export const starttls: PreauthCommand = {
  name: 'STARTTLS',
  async handle(session, tag, args) {
    if (args.length > 0 && session.tlsView.startTls) {
      session.send(`${tag} BAD STARTTLS takes no arguments\r\n`);
      return;
    }
    await session.startTls(tag);
  },
};
