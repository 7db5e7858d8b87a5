import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';

/**
 * A throw-away mesh CA and certificates whose CN is a service name, made with the openssl CLI,
 * so tests can call a service over mTLS as a given identity (the CN is what allowedCallers checks).
 */
export function testPki(names: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'wp-pki-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=wristpay-test-ca', '-days', '1');
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  const issued = new Set<string>();
  const issue = (name: string) => {
    if (issued.has(name)) return;
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'leaf.ext');
    issued.add(name);
  };
  for (const name of names) issue(name);
  const file = (f: string) => join(dir, f);
  return {
    /** Issues a certificate for one more identity (a test's own merchant); once per name. */
    issue,
    /** Environment for a service presenting `name`'s certificate and requiring client certificates. */
    env: (name: string) => ({ GRPC_TLS: 'mtls', TLS_CA_FILE: file('ca.crt'), TLS_CERT_FILE: file(`${name}.crt`), TLS_KEY_FILE: file(`${name}.key`) }),
    /** Client credentials presenting `name`'s certificate. */
    client: (name: string): ChannelCredentials =>
      credentials.createSsl(readFileSync(file('ca.crt')), readFileSync(file(`${name}.key`)), readFileSync(file(`${name}.crt`))),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
