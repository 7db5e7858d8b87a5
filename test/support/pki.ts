import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Issues `<name>.key` and `<name>.crt` in `dir` (CN = `name`, the caller identity mTLS
 * allow-lists check; usable as client and server for localhost), signed by the CA already in
 * `dir` (`ca.crt`, `ca.key`: this file's testPki, or scripts/dev-certs.sh's development CA).
 */
export function issueCertificate(dir: string, name: string, days = 1): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ext = join(dir, 'leaf.ext');
  if (!existsSync(ext)) writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  run('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-extfile', 'leaf.ext');
  rmSync(join(dir, `${name}.csr`));
}

/** Client credentials presenting `name`'s certificate from `dir` (issued there by issueCertificate or scripts/dev-certs.sh). */
export const clientCredentials = (dir: string, name: string): ChannelCredentials =>
  credentials.createSsl(readFileSync(join(dir, 'ca.crt')), readFileSync(join(dir, `${name}.key`)), readFileSync(join(dir, `${name}.crt`)));

/**
 * A throw-away mesh CA and certificates whose CN is a service name, made with the openssl CLI,
 * so tests can call a service over mTLS as a given identity (the CN is what allowedCallers checks).
 */
export function testPki(names: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'wp-pki-'));
  execFileSync('openssl', ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=wristpay-test-ca', '-days', '1'], { cwd: dir, stdio: 'pipe' });
  const issued = new Set<string>();
  const issue = (name: string) => {
    if (issued.has(name)) return;
    issueCertificate(dir, name);
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
    client: (name: string): ChannelCredentials => clientCredentials(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
