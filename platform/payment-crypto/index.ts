/** Pure payment crypto for WristPay: token numbers, device keys, challenges, token keys, key wrap, cryptograms, OTP. */
export * from './luhn';
export * from './keys';
export * from './challenge';
export * from './token-key';
export * from './key-wrap';
export * from './cryptogram';
export * from './otp';
