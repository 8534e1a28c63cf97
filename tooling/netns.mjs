// Network namespaces as hosts for tests: a bridge in this namespace and one
// veth pair per namespace, each inner end addressed on a private /24, made
// and removed by the test itself (root and `ip netns` needed; see
// netnsSkipReason). Every command has a deadline.
import { spawnSync } from 'node:child_process';

/** Runs a command to its end (10 s at most). */
export function sh(args) {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || '').trim(), stdout: r.stdout ?? '' };
}

function must(args) {
  const r = sh(args);
  if (!r.ok) throw new Error(`${args.join(' ')}: ${r.err}`);
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsSkipReason() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root to create network namespaces';
  if (!sh(['ip', 'netns', 'list']).ok) return '`ip netns` is not available';
  return undefined;
}

/**
 * `count` namespaces named from `tag` and this process's PID (so parallel
 * test files do not collide), on 10.<octet + pid % 50>.<pid % 250>.0/24:
 * the bridge is .1 when `bridgeAddress`, namespace i is .(i + 2).
 */
export function bridgedHosts(tag, count, octet, { bridgeAddress = true, ipv6 = false } = {}) {
  const id = (process.pid % 100000).toString(36);
  const subnet = `10.${octet + (process.pid % 50)}.${process.pid % 250}`;
  // With ipv6, also fd00:<octet>:<pid>::(i + 2)/64, without duplicate address detection (usable at once).
  const subnet6 = `fd00:${octet.toString(16)}:${(process.pid % 65536).toString(16)}:`;
  const hostIp6 = (i) => `${subnet6}:${(i + 2).toString(16)}`;
  const bridge = `${tag}br${id}`;
  const namespaces = Array.from({ length: count }, (_, i) => `${tag}ns${id}${String.fromCharCode(97 + i)}`);
  const inner = namespaces.map((_, i) => `${tag}p${id}${i}`);
  const hostIp = (i) => `${subnet}.${i + 2}`;
  return {
    bridge,
    namespaces,
    inner,
    subnet,
    bridgeIp: `${subnet}.1`,
    hostIp,
    hostIp6,
    setUp() {
      must(['ip', 'link', 'add', bridge, 'type', 'bridge']);
      if (bridgeAddress) must(['ip', 'addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
      must(['ip', 'link', 'set', bridge, 'up']);
      namespaces.forEach((ns, i) => {
        const outer = `${tag}v${id}${i}`;
        must(['ip', 'netns', 'add', ns]);
        must(['ip', 'link', 'add', outer, 'type', 'veth', 'peer', 'name', inner[i]]);
        must(['ip', 'link', 'set', inner[i], 'netns', ns]);
        must(['ip', 'link', 'set', outer, 'master', bridge]);
        must(['ip', 'link', 'set', outer, 'up']);
        must(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${hostIp(i)}/24`, 'dev', inner[i]]);
        if (ipv6) must(['ip', 'netns', 'exec', ns, 'ip', '-6', 'addr', 'add', `${hostIp6(i)}/64`, 'dev', inner[i], 'nodad']);
        must(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', inner[i], 'up']);
        must(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      });
    },
    tearDown() {
      for (const ns of namespaces) sh(['ip', 'netns', 'del', ns]);
      sh(['ip', 'link', 'del', bridge]);
    },
  };
}
