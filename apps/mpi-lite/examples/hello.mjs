// hello: every rank says who it is and how it reaches the others.
import { finalize, getProcessorName, init, worldInfo } from '@ibal/mpi';

const comm = await init();
const info = worldInfo();
console.log(`hello from rank ${comm.rank} of ${comm.size} (launched by ${info.launcher}, local rank ${info.localRank} on ${getProcessorName()}; peers via ${info.transports.join(',')})`);
await finalize();
