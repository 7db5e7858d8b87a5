import { testPki } from './pki';

/** Every identity the mesh's policies name, besides merchants (issued on demand). */
export const MESH_IDENTITIES = ['device-registry', 'tokenization', 'risk', 'settlement', 'gateway', 'alerts', 'wallet', 'backoffice'] as const;

let shared: ReturnType<typeof testPki> | undefined;

/**
 * One throw-away CA and a certificate per mesh identity for this test file (jest gives each file
 * its own module registry), made on first use and deleted when the process exits.
 */
export function meshPki(): ReturnType<typeof testPki> {
  if (!shared) {
    const pki = testPki([...MESH_IDENTITIES]);
    process.once('exit', () => pki.remove());
    shared = pki;
  }
  return shared;
}
