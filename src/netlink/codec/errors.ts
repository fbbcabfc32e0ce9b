/**
 * Bytes from the kernel (or a peer) that are not the rtnetlink structure they claim to be. A
 * RangeError, as the codec's decoders have always thrown, so `instanceof RangeError` still holds.
 */
export class NetlinkDecodeError extends RangeError {
  override name = 'NetlinkDecodeError';
}
