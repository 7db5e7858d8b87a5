import { readFileSync } from 'node:fs';
import { ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';
import { ConfigError } from '../config';

export interface TlsConfig {
  GRPC_TLS: 'off' | 'mtls';
  TLS_CA_FILE?: string | undefined;
  TLS_CERT_FILE?: string | undefined;
  TLS_KEY_FILE?: string | undefined;
}

interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function readTlsFiles(config: TlsConfig): TlsFiles {
  const read = (variable: 'TLS_CA_FILE' | 'TLS_CERT_FILE' | 'TLS_KEY_FILE'): Buffer => {
    const path = config[variable];
    if (!path) throw new ConfigError(`invalid configuration: ${variable}: required when GRPC_TLS=mtls`);
    try {
      return readFileSync(path);
    } catch {
      throw new ConfigError(`invalid configuration: ${variable}: cannot read ${path}`);
    }
  };
  return { ca: read('TLS_CA_FILE'), cert: read('TLS_CERT_FILE'), key: read('TLS_KEY_FILE') };
}

/** Server side: mutual TLS (client certificates required and checked against the CA), or plaintext for local use. */
export function serverCredentials(config: TlsConfig): ServerCredentials {
  if (config.GRPC_TLS === 'off') return ServerCredentials.createInsecure();
  const files = readTlsFiles(config);
  return ServerCredentials.createSsl(files.ca, [{ cert_chain: files.cert, private_key: files.key }], true);
}

/** Client side: presents this service's certificate and trusts only the mesh CA. */
export function channelCredentials(config: TlsConfig): ChannelCredentials {
  if (config.GRPC_TLS === 'off') return credentials.createInsecure();
  const files = readTlsFiles(config);
  return credentials.createSsl(files.ca, files.key, files.cert);
}
