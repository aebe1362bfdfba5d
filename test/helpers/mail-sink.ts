// An independent SMTP server (the smtp-server package) on loopback that accepts every mail, for the tests of
// what our code sends (the lab senders, the result mails): each mail, with its envelope and what the session
// saw of the client, goes to `onMail`.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface SunkMail {
  remoteAddress: string;
  /** The HELO/EHLO name. */
  clientHostname: string;
  secure: boolean;
  /** The envelope sender as smtp-server shows it ('' for the null sender). */
  mailFrom: string;
  rcptTo: string[];
  message: Buffer;
}

export interface MailSink {
  port: number;
  close(): Promise<void>;
}

/** @param options more smtp-server options (a certificate, disabled commands, onConnect…). */
export async function startMailSink(onMail: (m: SunkMail) => void, options: SMTPServerOptions = {}): Promise<MailSink> {
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    ...options,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        onMail({
          remoteAddress: session.remoteAddress,
          clientHostname: session.hostNameAppearsAs,
          secure: session.secure,
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          message: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { port: (server.server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
