import { composeService } from './service';
import { createLogger } from './log';

const log = createLogger('service-test');
log.level = 'silent';

describe('composeService', () => {
  it('closes what it opened in reverse order, once', async () => {
    const closed: string[] = [];
    const svc = await composeService(log, async (own) => {
      own('db', (r) => void closed.push(r));
      own('bus', async (r) => void closed.push(r));
      own('server', (r) => void closed.push(r));
      return { port: 7 };
    });
    expect(svc.port).toBe(7);
    await svc.stop();
    await svc.stop();
    expect(closed).toEqual(['server', 'bus', 'db']);
  });

  it('closes what a failed start had opened and rethrows', async () => {
    const closed: string[] = [];
    await expect(
      composeService(log, async (own) => {
        own('db', (r) => void closed.push(r));
        own('bus', () => {
          throw new Error('bus close failed');
        });
        throw new Error('port in use');
      }),
    ).rejects.toThrow('port in use');
    // The failing close is logged and the rest still close.
    expect(closed).toEqual(['db']);
  });
});
