import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { computeIcrcFromFrame, readIcrc } from '../src/packet/icrc.js';
import { decodePacket, DecodeResult, decodeResultName, describePacket, newParsedPacket } from '../src/packet/packet.js';
import { extractRoce, readCapture } from '../src/pcap-reader.js';

// Captures of RoCEv2 traffic from other implementations (Linux rxe, NICs),
// shared between checkouts in ../shared/golden next to the repository. Every
// packet in them must decode and carry the ICRC our rule computes over its
// real IP header. The folder is created by whoever records the captures; it
// does not exist yet, so until then this test is skipped. IBAL_GOLDEN_DIR
// points it elsewhere (to try a capture before sharing it).
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const goldenDir = process.env.IBAL_GOLDEN_DIR ?? path.resolve(repoRoot, '..', 'shared', 'golden');
const exists = fs.existsSync(goldenDir);
const files = exists
  ? fs
      .readdirSync(goldenDir)
      .filter((f) => /\.(pcap|pcapng|cap)$/i.test(f))
      .sort()
  : [];

describe('golden captures', () => {
  it.skipIf(!exists)('holds at least one capture', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const name of files) {
    it(`decodes every RoCEv2 packet of ${name} and agrees with its ICRC`, () => {
      const recs = readCapture(fs.readFileSync(path.join(goldenDir, name)));
      const p = newParsedPacket();
      let roce = 0;
      recs.forEach((rec, i) => {
        const r = extractRoce(rec);
        if (!r) return;
        roce++;
        const where = `${name} packet ${i + 1}`;
        const res = decodePacket(r.roce, r.roce.length, p);
        expect(decodeResultName(res), where).toBe(decodeResultName(DecodeResult.OK));
        expect(computeIcrcFromFrame(r.ip), `${where}: ${describePacket(p)}`).toBe(readIcrc(r.roce, r.roce.length));
      });
      expect(roce, `${name} holds no UDP/4791 packet`).toBeGreaterThan(0);
    });
  }
});
