export interface ReadmeExample {
  /** Line of the opening fence in README.md. */
  line: number;
  lang: 'ts' | 'js';
  /** `ranks=N` in the info string: run as an N-rank MPI job; 0 otherwise. */
  ranks: number;
  code: string;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export type Launcher = (file: string, ranks: number, timeoutMs: number) => Promise<RunResult[]>;

export function readmeExamples(pkgDir: string): ReadmeExample[];
export function writeExample(pkgDir: string, example: ReadmeExample): string;
export function removeExample(file: string): void;
export function runNode(file: string, options?: { timeoutMs?: number; env?: Record<string, string> }): Promise<RunResult>;
export function describeReadme(pkgUrl: URL, options?: { launch?: Launcher; timeoutMs?: number }): void;
