// ring: a token goes round the ranks `laps` times; each rank adds its rank.
// Usage: mpilite run -n 4 examples/ring.mjs [laps]
import { finalize, init } from '@ibal/mpi';

const laps = Number(process.argv[2] ?? 3);
const comm = await init();
const { rank, size } = comm;
const next = (rank + 1) % size;
const prev = (rank - 1 + size) % size;
const token = new Float64Array(1);
for (let lap = 0; lap < laps; lap++) {
  if (rank === 0) {
    token[0] += rank;
    if (size > 1) {
      await comm.Send(token, next, lap);
      await comm.Recv(token, prev, lap);
    }
  } else {
    await comm.Recv(token, prev, lap);
    token[0] += rank;
    await comm.Send(token, next, lap);
  }
}
if (rank === 0) {
  const expected = (laps * size * (size - 1)) / 2;
  console.log(`ring: ${laps} laps over ${size} ranks, token = ${token[0]} (expected ${expected})`);
  if (token[0] !== expected) process.exitCode = 1;
}
await finalize();
