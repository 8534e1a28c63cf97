// Which launcher started this process, and where its ranks meet.
//
//   mpilite run   MPILITE_RANK, MPILITE_SIZE, MPILITE_LOCAL_RANK, MPILITE_LOCAL_SIZE,
//                 MPILITE_JOBID and MPILITE_RENDEZVOUS=host:port (the launcher serves it).
//   mpirun        OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE (Open MPI).
//   srun          SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (Slurm).
//
// Under mpirun and srun nobody serves a rendezvous, so world rank 0 serves
// one in-process. The others find it two ways, tried in turn:
//   1. a file rank 0 writes, named after the job id, in the job's session
//      directory (OMPI_MCA_orte_jobfam_session_dir) or the temp directory:
//      enough when every rank is on one host or the directory is shared;
//   2. host:port derived from the launcher: the port is 20000 + (FNV-1a of
//      the job id) mod 30000, unless MPILITE_RENDEZVOUS_PORT says; the host is
//      MPILITE_RENDEZVOUS_HOST, else 127.0.0.1 when every rank is local, else
//      mpirun's own host from OMPI_MCA_orte_hnp_uri (mpirun puts rank 0 on
//      the first host, normally its own) or Slurm's first node of
//      SLURM_STEP_NODELIST.
// A server must answer with the job id, so a stray listener on a derived
// port is never mistaken for the rendezvous.
import os from 'node:os';
import path from 'node:path';
import { BootstrapError } from '../errors.js';

export type LauncherKind = 'mpilite' | 'mpirun' | 'srun' | 'singleton';

export interface LaunchInfo {
  launcher: LauncherKind;
  rank: number;
  size: number;
  localRank: number;
  localSize: number;
  jobId: string;
  /** Where the server is (mpilite) or should be looked for. */
  rendezvous: { host: string; port: number } | undefined;
  /** True when this process must serve the rendezvous (rank 0 under mpirun/srun, or a singleton). */
  serve: boolean;
  /** Address to listen on when serving. */
  listenHost: string;
  /** The file rank 0 publishes its address in, for mpirun/srun. */
  addressFile: string | undefined;
}

function int(v: string | undefined, name: string): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < 0) throw new BootstrapError(`${name}=${String(v)} is not a non-negative integer`);
  return n;
}

function port(v: string | undefined, name: string): number {
  const n = int(v, name);
  if (n < 1 || n > 65535) throw new BootstrapError(`${name}=${String(v)} is not a port (1-65535)`);
  return n;
}

/** FNV-1a over the job id: a port every rank derives alike. */
export function derivedPort(jobId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jobId.length; i++) {
    h ^= jobId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 20000 + (h % 30000);
}

export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s.trim());
  const p = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !(p >= 1 && p <= 65535)) throw new BootstrapError(`expected host:port with a port in 1-65535, got ${s}`);
  return { host: m[1], port: p };
}

/**
 * Reads the launcher's environment. Values no launcher would set (a rank
 * outside the job, a job of no ranks, a port out of range) are
 * BootstrapErrors here, before any rank waits for this one at the rendezvous.
 */
export function detectLaunch(env: NodeJS.ProcessEnv = process.env): LaunchInfo {
  const l = launchOf(env);
  if (l.size < 1) throw new BootstrapError(`${l.launcher}: a job of ${l.size} ranks`);
  if (l.rank >= l.size) throw new BootstrapError(`${l.launcher}: rank ${l.rank} of a job of ${l.size} ranks`);
  return l;
}

function launchOf(env: NodeJS.ProcessEnv): LaunchInfo {
  if (env.MPILITE_RANK !== undefined && env.MPILITE_RENDEZVOUS) {
    return {
      launcher: 'mpilite',
      rank: int(env.MPILITE_RANK, 'MPILITE_RANK'),
      size: int(env.MPILITE_SIZE, 'MPILITE_SIZE'),
      localRank: int(env.MPILITE_LOCAL_RANK ?? '0', 'MPILITE_LOCAL_RANK'),
      localSize: int(env.MPILITE_LOCAL_SIZE ?? '1', 'MPILITE_LOCAL_SIZE'),
      jobId: env.MPILITE_JOBID ?? 'mpilite',
      rendezvous: parseHostPort(env.MPILITE_RENDEZVOUS),
      serve: false,
      listenHost: '127.0.0.1',
      addressFile: undefined,
    };
  }
  if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    const size = int(env.OMPI_COMM_WORLD_SIZE, 'OMPI_COMM_WORLD_SIZE');
    const localSize = int(env.OMPI_COMM_WORLD_LOCAL_SIZE ?? String(size), 'OMPI_COMM_WORLD_LOCAL_SIZE');
    const jobId = `ompi-${env.OMPI_MCA_ess_base_jobid ?? env.PMIX_NAMESPACE ?? env.OMPI_MCA_orte_hnp_uri ?? 'job'}`;
    const hnpHost = /tcp:\/\/([^:;,]+):/.exec(env.OMPI_MCA_orte_hnp_uri ?? '')?.[1];
    return external('mpirun', int(env.OMPI_COMM_WORLD_RANK, 'OMPI_COMM_WORLD_RANK'), size, int(env.OMPI_COMM_WORLD_LOCAL_RANK ?? '0', 'OMPI_COMM_WORLD_LOCAL_RANK'), localSize, jobId, env.OMPI_MCA_orte_jobfam_session_dir, hnpHost, env);
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    const size = int(env.SLURM_NTASKS, 'SLURM_NTASKS');
    const nodes = Number(env.SLURM_STEP_NUM_NODES ?? env.SLURM_NNODES ?? '1');
    const perNode = /^(\d+)/.exec(env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE ?? '')?.[1];
    const localSize = nodes === 1 ? size : Number(perNode ?? size);
    const jobId = `slurm-${env.SLURM_JOB_ID ?? env.SLURM_JOBID ?? 'job'}.${env.SLURM_STEP_ID ?? env.SLURM_STEPID ?? '0'}`;
    const first = (env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? '').split(',')[0];
    const firstHost = first && !first.includes('[') ? first : undefined;
    return external('srun', int(env.SLURM_PROCID, 'SLURM_PROCID'), size, int(env.SLURM_LOCALID ?? '0', 'SLURM_LOCALID'), localSize, jobId, undefined, nodes === 1 ? undefined : firstHost, env);
  }
  return {
    launcher: 'singleton',
    rank: 0,
    size: 1,
    localRank: 0,
    localSize: 1,
    jobId: `singleton-${process.pid}`,
    rendezvous: undefined,
    serve: true,
    listenHost: '127.0.0.1',
    addressFile: undefined,
  };
}

function external(
  launcher: LauncherKind,
  rank: number,
  size: number,
  localRank: number,
  localSize: number,
  jobId: string,
  sessionDir: string | undefined,
  remoteHost: string | undefined,
  env: NodeJS.ProcessEnv,
): LaunchInfo {
  const allLocal = localSize >= size;
  const host = env.MPILITE_RENDEZVOUS_HOST ?? (allLocal ? '127.0.0.1' : (remoteHost ?? '127.0.0.1'));
  const rdvPort = env.MPILITE_RENDEZVOUS_PORT ? port(env.MPILITE_RENDEZVOUS_PORT, 'MPILITE_RENDEZVOUS_PORT') : derivedPort(jobId);
  const dir = sessionDir ?? os.tmpdir();
  return {
    launcher,
    rank,
    size,
    localRank,
    localSize,
    jobId,
    rendezvous: { host, port: rdvPort },
    serve: rank === 0,
    listenHost: allLocal && !env.MPILITE_RENDEZVOUS_HOST ? '127.0.0.1' : '0.0.0.0',
    addressFile: path.join(dir, `mpilite-${jobId.replace(/[^A-Za-z0-9_.-]/g, '_')}.addr`),
  };
}
