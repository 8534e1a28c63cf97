export function sh(args: string[]): { ok: boolean; err: string; stdout: string };
export function netnsSkipReason(): string | undefined;
export interface BridgedHosts {
  readonly bridge: string;
  readonly namespaces: string[];
  /** The veth end inside each namespace. */
  readonly inner: string[];
  readonly subnet: string;
  readonly bridgeIp: string;
  hostIp(i: number): string;
  /** Namespace i's IPv6 address (made only with the ipv6 option). */
  hostIp6(i: number): string;
  setUp(): void;
  tearDown(): void;
}
export function bridgedHosts(tag: string, count: number, octet: number, options?: { bridgeAddress?: boolean; ipv6?: boolean }): BridgedHosts;
