import type { DeviceRegistryServiceServer } from '../../../gen/wristpay/device_registry/v1/device_registry';
import type { CallerPolicy } from '../../../platform/grpc/server';

const WALLET = ['wallet'] as const;
const WALLET_AND_BACKOFFICE = ['wallet', 'backoffice'] as const;

/**
 * Who may call each device-registry method (deny by default: platform/grpc/server.ts). The
 * phone-facing wallet backend runs a band's life (register, pair, sessions, lost, deregister);
 * people in the back office may act on a band for its owner; the gateway reads sessions on the
 * payment path and checks step-up signatures; tokenization checks the band it provisions to.
 */
export const deviceRegistryPolicy: CallerPolicy<DeviceRegistryServiceServer> = {
  registerDevice: WALLET,
  createChallenge: WALLET,
  pairDevice: WALLET,
  startSession: WALLET,
  heartbeat: WALLET,
  endSession: WALLET,
  getSession: ['gateway', 'wallet'],
  getDevice: ['tokenization', 'gateway', 'wallet', 'backoffice'],
  listDevices: WALLET_AND_BACKOFFICE,
  suspendDevice: WALLET_AND_BACKOFFICE,
  resumeDevice: WALLET_AND_BACKOFFICE,
  reportLost: WALLET_AND_BACKOFFICE,
  deregister: WALLET_AND_BACKOFFICE,
  verifyDeviceSignature: ['gateway'],
};
