import { status, type ServiceError } from '@grpc/grpc-js';
import { DeviceRegistryServiceClient, DeviceStatus, deviceStatusToJSON, type Device } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable } from '../../../platform/errors';
import { createClient, type PromiseClient } from '../../../platform/grpc/client';
import { channelCredentials, type TlsConfig } from '../../../platform/grpc/credentials';

/** A band as tokenization needs it: paid-for-by whom, and where its token keys are sealed to. */
export interface PayingDevice {
  deviceId: string;
  accountId: string;
  x25519PublicKey: Buffer;
}

/**
 * device-registry over gRPC, seen from tokenization: only "is this band ACTIVE and whose is
 * it". The registry's statuses become this service's own errors, so a caller of
 * ProvisionToken gets a precise status, never a relayed INTERNAL.
 */
export class DeviceDirectory {
  constructor(
    private readonly client: PromiseClient<DeviceRegistryServiceClient>,
    private readonly deadlineMs: number,
  ) {}

  static connect(config: TlsConfig & { DEVICE_REGISTRY_ADDR: string; GRPC_CLIENT_DEADLINE_MS: number }): DeviceDirectory {
    return new DeviceDirectory(
      createClient(DeviceRegistryServiceClient, config.DEVICE_REGISTRY_ADDR, {
        credentials: channelCredentials(config),
        deadlineMs: config.GRPC_CLIENT_DEADLINE_MS,
        retryable: ['getDevice'],
      }),
      config.GRPC_CLIENT_DEADLINE_MS,
    );
  }

  /**
   * The band, if it may hold payment tokens for `accountId` now: it exists (NOT_FOUND), belongs
   * to that account (PERMISSION_DENIED) and is ACTIVE (FAILED_PRECONDITION).
   */
  async activeDevice(deviceId: string, accountId: string, deadline?: Date): Promise<PayingDevice> {
    const device = await this.get(deviceId, deadline);
    if (device.accountId !== accountId) throw new PermissionDenied('this band belongs to another account');
    if (device.status !== DeviceStatus.DEVICE_STATUS_ACTIVE) {
      throw new FailedPrecondition(`the band is ${deviceStatusToJSON(device.status).replace('DEVICE_STATUS_', '')}, not ACTIVE; it cannot hold payment tokens`);
    }
    return { deviceId: device.deviceId, accountId: device.accountId, x25519PublicKey: Buffer.from(device.x25519PublicKey) };
  }

  private async get(deviceId: string, deadline?: Date): Promise<Device> {
    // Never wait past the caller's own deadline: an answer it can no longer use is wasted work.
    const deadlineMs = Math.max(1, Math.min(this.deadlineMs, deadline ? deadline.getTime() - Date.now() - 50 : Infinity));
    try {
      const { device } = await this.client.getDevice({ deviceId }, { deadlineMs });
      if (!device) throw new Unavailable('device-registry answered without a device');
      return device;
    } catch (err) {
      const code = (err as Partial<ServiceError>).code;
      if (code === status.NOT_FOUND) throw new NotFound(`no device ${deviceId}`);
      if (code === status.INVALID_ARGUMENT) throw new InvalidArgument((err as ServiceError).details);
      if (code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED) throw new Unavailable('device-registry is unavailable; retry later');
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}
