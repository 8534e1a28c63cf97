// The README's runnable examples, run against the built package as a user would paste them.
import { describeReadme } from '@ibal/tooling/readme';

describeReadme(new URL('..', import.meta.url));
