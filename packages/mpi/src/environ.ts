// MPI's environment queries, as ported code prints them at start-up.
import { createRequire } from 'node:module';
import os from 'node:os';

/** MPI_Get_version: the MPI standard this library follows, [version, subversion]. */
export function getVersion(): [number, number] {
  return [3, 1];
}

/** MPI_Get_library_version: which MPI this is, on which Node. */
export function getLibraryVersion(): string {
  // Read at call time from the package's own manifest (shipped beside dist/), not copied into the source.
  const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
  return `ibal @ibal/mpi ${version} (MPI ${getVersion().join('.')} subset) on Node ${process.version}`;
}

/** MPI_Get_processor_name: this host's name. */
export function getProcessorName(): string {
  return os.hostname();
}

/** MPI_Wtick: the resolution of wtime(), in seconds (performance.now() counts nanoseconds here). */
export function wtick(): number {
  return 1e-9;
}
