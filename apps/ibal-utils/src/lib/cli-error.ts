// Errors a command reports to the user. The CLI prints the message (no
// stack: these are expected failures such as a refused connection or a
// completion error) and exits with the code.

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A bad command line: the CLI adds a pointer to the command's --help. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'UsageError';
  }
}
