// Types for the untyped buffer2address package (a dependency of syscall-napi).
declare module 'buffer2address' {
  const b2a: {
    /** Memory address of the buffer's data; valid while the buffer is referenced. */
    buffer2address(buf: Buffer): bigint;
  };
  export default b2a;
}
