import { Channel } from '../../gen/wristpay/common/v1/common';
import { GetBalanceRequest } from '../../gen/wristpay/settlement/v1/settlement';
import { ProvisionTokenRequest } from '../../gen/wristpay/tokenization/v1/tokenization';
import { InvalidArgument } from '../errors';
import { meshDescriptor } from './descriptor';
import { guardRequest, strictDeserializer, UndecodableRequest } from './request-guard';
import { wireFormatProblem } from './wire-format';

const shapeOf = (path: string) => meshDescriptor().method(path)!.request;
const balance = shapeOf('/wristpay.settlement.v1.SettlementService/GetBalance');
const provision = shapeOf('/wristpay.tokenization.v1.TokenizationService/ProvisionToken');
const hex = (h: string) => Buffer.from(h.replace(/ /g, ''), 'hex');

describe('wireFormatProblem', () => {
  it('accepts what the generated encoders write, packed and unpacked repeated scalars, and unknown fields', () => {
    expect(wireFormatProblem(GetBalanceRequest.encode({ accountId: 'acct-1', currency: 'EUR' }).finish(), balance)).toBeUndefined();
    const provisioned = ProvisionTokenRequest.encode({
      idempotencyKey: 'k',
      deviceId: 'd',
      accountId: 'a',
      fundingSource: { source: { $case: 'walletAccountId', value: 'w' } },
      channels: [Channel.CHANNEL_BAND_TAP, Channel.CHANNEL_BAND_QR],
    }).finish();
    expect(wireFormatProblem(provisioned, provision)).toBeUndefined();
    // channels (5) unpacked: 28 01 28 02; an unknown field 15 of each wire type.
    expect(wireFormatProblem(hex('2801 2802 7801 7901020304050607 08 7a0161 7d01020304'), provision)).toBeUndefined();
    expect(wireFormatProblem(new Uint8Array(0), balance)).toBeUndefined();
  });

  it('names a known field sent with another wire type, in nested messages too', () => {
    expect(wireFormatProblem(hex('0807'), balance)).toBe('account_id is encoded as varint, but its type, string, is length-delimited');
    // funding_source (4) { wallet_account_id (1) as a fixed32 }
    expect(wireFormatProblem(hex('2205 0d01020304'), provision)).toBe('funding_source.wallet_account_id is encoded as i32, but its type, string, is length-delimited');
    // channels as a fixed64
    expect(wireFormatProblem(hex('290102030405060708'), provision)).toBe('channels is encoded as i64, but its type, enum, is varint');
  });

  it('refuses truncated records, illegal tags, groups and over-long varints', () => {
    expect(wireFormatProblem(hex('0a05 6162'), balance)).toBe('account_id is truncated');
    expect(wireFormatProblem(hex('78ff'), balance)).toBe('field 15 is truncated');
    expect(wireFormatProblem(hex('79 0102'), balance)).toBe('field 15 is truncated');
    expect(wireFormatProblem(hex('0001'), balance)).toMatch(/field number 0/);
    expect(wireFormatProblem(hex('7e'), balance)).toMatch(/wire type invalid \(6\)/);
    expect(wireFormatProblem(hex('7b'), balance)).toMatch(/group start/);
    expect(wireFormatProblem(hex('7c'), balance)).toMatch(/group end/);
    expect(wireFormatProblem(hex('78 ffffffffffffffffffff01'), balance)).toMatch(/longer than 10 bytes/);
    expect(wireFormatProblem(hex('2a02 80'), provision)).toBe('channels is truncated');
  });
});

describe('strictDeserializer', () => {
  const decode = strictDeserializer((b) => GetBalanceRequest.decode(b), balance);

  it('decodes a well-formed request, and turns anything else into an UndecodableRequest the guard refuses as INVALID_ARGUMENT', () => {
    expect(decode(Buffer.from(GetBalanceRequest.encode({ accountId: 'a', currency: 'EUR' }).finish()))).toEqual({ accountId: 'a', currency: 'EUR' });
    const bad = decode(hex('0807'));
    expect(bad).toBeInstanceOf(UndecodableRequest);
    expect(() => guardRequest(bad)).toThrow(InvalidArgument);
    expect(() => guardRequest(bad)).toThrow('request is not a valid wristpay.settlement.v1.GetBalanceRequest: account_id is encoded as varint, but its type, string, is length-delimited');
  });

  it('without a shape, still turns a decoder that throws into an UndecodableRequest', () => {
    const loose = strictDeserializer((b) => GetBalanceRequest.decode(b), undefined);
    expect(loose(hex('0a05'))).toEqual(new UndecodableRequest('request is not a valid request message'));
  });
});
