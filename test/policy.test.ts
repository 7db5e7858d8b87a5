import { readFileSync } from 'node:fs';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { repoPath } from '../platform/paths';
import { MESH_POLICIES, serviceNameOf } from './support/policies';

/** Every rpc of every WristPay service in the generated descriptor set, as `package.Service/Method`. */
function describedMethods(): string[] {
  const definitions = loadFileDescriptorSetFromBuffer(readFileSync(repoPath('gen', 'descriptor.binpb')));
  return Object.entries(definitions).flatMap(([name, definition]) =>
    name.startsWith('wristpay.') && !('format' in definition) ? Object.values(definition as Record<string, { path: string }>).map((m) => m.path.slice(1)) : [],
  );
}

describe('caller policies', () => {
  const lowerFirst = (name: string) => name[0]!.toLowerCase() + name.slice(1);

  it('name every method of every service in the contract, and nothing else (deny by default: a missing entry refuses everyone)', () => {
    const described = describedMethods();
    expect(described.length).toBeGreaterThan(50);
    const policed = MESH_POLICIES.flatMap(({ definition, policy }) => Object.keys(policy).map((method) => `${serviceNameOf(definition)}/${method}`));
    const expected = described.map((m) => {
      const [service, method] = m.split('/');
      return `${service}/${lowerFirst(method!)}`;
    });
    expect(policed.sort()).toEqual(expected.sort());
  });

  it('list at least one identity for every method, and only identities the mesh issues', () => {
    const identities = new Set(['device-registry', 'tokenization', 'risk', 'settlement', 'gateway', 'alerts', 'wallet', 'backoffice', 'merchant.*']);
    for (const { definition, policy } of MESH_POLICIES) {
      for (const [method, allowed] of Object.entries(policy)) {
        expect({ method: `${serviceNameOf(definition)}/${method}`, allowed: allowed.length > 0 }).toEqual({ method: `${serviceNameOf(definition)}/${method}`, allowed: true });
        for (const identity of allowed) expect(identities).toContain(identity);
      }
    }
  });

  it('are what the README table says each identity may call', () => {
    const readme = readFileSync(repoPath('README.md'), 'utf8');
    const identities = ['wallet', 'backoffice', 'merchant.*', 'gateway', 'tokenization', 'settlement', 'device-registry', 'risk', 'alerts'];
    for (const identity of identities) {
      const calls = MESH_POLICIES.flatMap(({ definition, policy }) => {
        const methods = Object.entries(policy)
          .filter(([, allowed]) => allowed.includes(identity))
          .map(([method]) => method[0]!.toUpperCase() + method.slice(1));
        return methods.length ? [`${serviceNameOf(definition).split('.').pop()}: ${methods.join(', ')}`] : [];
      });
      expect(readme).toContain(`| \`${identity}\` | ${calls.join('; ') || 'nothing'} |`);
    }
  });
});
