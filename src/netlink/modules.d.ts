// Minimal types for the untyped JavaScript packages the transport uses.

declare module 'syscall-napi' {
  interface SyscallFn {
    (...args: Array<bigint | Buffer>): Promise<bigint>;
    /** Runs the syscall on the calling thread; throws an Error whose message is strerror(errno). */
    sync(...args: Array<bigint | Buffer>): bigint;
  }
  const sys: { syscall: SyscallFn } & Record<`__NR_${string}`, bigint>;
  export default sys;
}

declare module 'node-netlink' {
  export interface RawHeader {
    nlmsg_type: bigint;
    nlmsg_flags: bigint;
    nlmsg_seq: bigint;
    nlmsg_pid: bigint;
  }
  export interface RawMessage {
    header: RawHeader;
    payload: Buffer;
  }
  export interface NetlinkSocketHandle {
    nl_pid: bigint;
    tryTalk(
      message: { header: { nlmsg_type: bigint; nlmsg_flags: bigint }; payload: Buffer },
      options?: { timeout?: number },
    ): Promise<{ errorCode: number; packets: RawMessage[] }>;
    close(): Promise<void>;
    on(event: 'message', listener: (message: RawMessage) => void): void;
  }
  const netlink: {
    open(options: { family: number; pid?: number; groups?: number }): Promise<NetlinkSocketHandle>;
  };
  export default netlink;
}
