// Dead letters: list what was parked on the dead-letter stream, replay one by its sequence.
//   npm run dlq -- list [--limit 100]   (in the image: node dist/platform/dead-letters-cli.js list)
//   npm run dlq -- replay <seq>
// NATS_URL and NATS_SUBJECT_PREFIX as the services have them. Prints where a message came from
// and why it was parked, never its payload.
import { loadConfig, natsEnv } from './config';
import { listDeadLetters, replayDeadLetter } from './dead-letter-admin';
import { limitsFromConfig } from './dead-letters';
import { createLogger } from './log';
import { EventBus } from './nats';
import { z } from 'zod';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'list' && command !== 'replay') {
    process.stderr.write('usage: npm run dlq -- list [--limit N] | replay <seq>\n');
    return 2;
  }
  const config = loadConfig(z.object(natsEnv));
  const log = createLogger('dead-letters');
  const bus = await EventBus.connect({ url: config.NATS_URL, prefix: config.NATS_SUBJECT_PREFIX, source: 'dead-letters', log, replicas: config.NATS_STREAM_REPLICAS, limits: limitsFromConfig(config) });
  try {
    if (command === 'list') {
      const limitAt = rest.indexOf('--limit');
      const letters = await listDeadLetters(bus, limitAt >= 0 ? Number(rest[limitAt + 1]) : 100);
      for (const d of letters) process.stdout.write(`${JSON.stringify(d)}\n`);
      process.stderr.write(`${letters.length} dead letter(s) on ${bus.streamName('dead_letters')}\n`);
      return 0;
    }
    const seq = Number(rest[0]);
    if (!Number.isSafeInteger(seq) || seq < 1) {
      process.stderr.write('replay needs the dead letter\'s sequence (from `list`)\n');
      return 2;
    }
    const { subject, newSeq } = await replayDeadLetter(bus, seq);
    process.stdout.write(`replayed dead letter ${seq} onto ${subject} (stream seq ${newSeq}); removed from the dead-letter stream\n`);
    return 0;
  } finally {
    await bus.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  },
);
